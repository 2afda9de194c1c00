"""Names of the choices that a config declares and a torch module implements, kept where no torch is imported.

A training config declares ``choices=`` with these (``saliency train --help`` imports no torch), and the modules that
implement them import them from here: each vocabulary is written once.
"""
from __future__ import annotations

#: CA classifier-pool thinning strategies (:data:`saliency_core.classifiers.pool.THINNING_STRATEGIES`).
THINNING_STRATEGY_NAMES = ("F", "L", "FL", "L100", "L1000")
#: Gumbel-Softmax mask of a Phang masker (:mod:`saliency_core.maskers.phang`).
GUMBEL_MODES = ("off", "soft", "hard")
#: Mask upsampling of a Phang masker.
UPSAMPLE_MODES = ("nearest", "bilinear")
#: Per-label masker training (Gupta et al.): the insertion game, its calibrated form, or the paper's loss.
LABEL_OBJECTIVES = ("insertion", "calibrated", "gupta")
#: Where the label modulates the label masker's decoder (:class:`saliency_core.maskers.label.LabelMaskerConfig`).
FILM_POSITIONS = ("input", "hidden")
#: What each objective has of its own in the conditional masker's decoder (the objective is a FiLM input in every case).
OBJECTIVE_BRANCHES = ("shared", "head", "decoder")
#: What the area masker's scores start from: nothing (the decoder alone) or the explained class's CAM.
SCORE_PRIORS = ("none", "cam")
#: The completeness and soundness floors of Gupta et al. (:mod:`saliency_core.metrics.completeness`).
EPS1, EPS2 = 0.01, 0.001
