"""maskers."""
