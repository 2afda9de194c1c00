"""saliency_core: masking-based saliency maps (Phang et al., CASM, FIDO, Gupta et al.) in PyTorch."""
__version__ = "0.1.0"
