"""methods/optimize."""
