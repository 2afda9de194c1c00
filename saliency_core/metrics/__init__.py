"""Evaluation metrics for saliency maps: pure, batched tensor functions, one module per job.

- :mod:`.insertion`: insertion / deletion curves and AUC (Petsiuk et al.).
- :mod:`.completeness`: completeness and soundness (Gupta et al.), per-label scores.
- :mod:`.saliency_metric`: the Saliency Metric (Dabkowski & Gal).
- :mod:`.wsol`: boxes from masks, OM / LE / continuous F1 against ground-truth boxes.
- :mod:`.pxap`: pixel average precision against pixel masks (Choe et al.).
- :mod:`.mask_stats`: mean, spread, total variation, bimodality histogram (Phang et al. Fig. 2).
- :mod:`.similarity`: Spearman rank correlation, HOG correlation, SSIM between maps.
- :mod:`.sanity`: model-parameter randomisation test (cascading and independent).
- :mod:`.roar`: remove-and-retrain at small scale.
- :mod:`.localisation`: pasted-object localisation check (energy in box, pointing game, IoU).
- :mod:`.masked_accuracy`: accuracy of masked-in / masked-out / infilled images per classifier.
- :mod:`.fixed_area`: binary top-a regions kept / removed at fixed areas, the area curve (Fong et al. 2019).
"""
from saliency_core.metrics.completeness import LabelScores, completeness, label_scores, soundness
from saliency_core.metrics.insertion import CurveError, CurveResult, deletion_curves, insertion_curves

__all__ = ["CurveError", "CurveResult", "LabelScores", "completeness", "deletion_curves", "insertion_curves",
           "label_scores", "soundness"]
