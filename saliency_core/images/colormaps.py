"""The colour maps offered for overlays (a name list with no imports, so that a config can declare them as its
choices without loading numpy or matplotlib)."""

#: Colour maps offered for overlays: perceptually uniform ones, and gray.
COLORMAPS = ("inferno", "viridis", "magma", "cividis", "gray")
