"""infill."""
