"""Per-image mask optimisation (FIDO, meaningful perturbation, Gupta et al.): options and presets
(``config``), the engine (``engine``) and the registered methods (``method``)."""
from saliency_core.methods.optimize.config import PRESETS, OptimizeConfig, OptimizeError, make_config
from saliency_core.methods.optimize.engine import OptimizationCancelled, OptimizeResult, optimize_masks

__all__ = ["PRESETS", "OptimizeConfig", "OptimizeError", "make_config", "OptimizationCancelled", "OptimizeResult",
           "optimize_masks"]
