"""Two sentences per toggle and the paper it comes from: shown as widget tooltips and on the Help page.

Keys are the core option names (``ExplainConfig`` fields, method and infiller options,
``label_scores`` options), so a toggle and its help always share one name.
"""
from __future__ import annotations

from dataclasses import dataclass

PAPERS: dict[str, str] = {
    "phang": "Phang, Park & Geras (2020), *Investigating and Simplifying Masking-based Saliency Methods for "
             "Model Interpretability*",
    "casm": "Zolna, Geras & Cho (2020), *Classifier-agnostic saliency map extraction* (CASM)",
    "fido": "Chang, Creager, Goldenberg & Duvenaud (2019), *Explaining Image Classifiers by Counterfactual "
            "Generation* (FIDO)",
    "mp": "Fong & Vedaldi (2017), *Interpretable Explanations of Black Boxes by Meaningful Perturbation*",
    "gupta": "Gupta, Saunshi, Yu, Lyu & Arora (2022), *New Definitions and Evaluations for Saliency Methods: "
             "Staying Intrinsic, Complete and Sound*",
    "dabkowski": "Dabkowski & Gal (2017), *Real Time Image Saliency for Black Box Classifiers*",
    "rise": "Petsiuk, Das & Saenko (2018), *RISE: Randomized Input Sampling for Explanation of Black-box Models*",
    "gradcam": "Selvaraju et al. (2017), *Grad-CAM: Visual Explanations from Deep Networks*",
    "ig": "Sundararajan, Taly & Yan (2017), *Axiomatic Attribution for Deep Networks* (Integrated Gradients)",
    "gxi": "Shrikumar et al. (2016), *Not Just a Black Box* (gradient x input)",
}


@dataclass(frozen=True)
class ToggleHelp:
    title: str
    text: str  # two sentences: what it does, and why / when to change it
    paper: str  # a key of PAPERS

    @property
    def citation(self) -> str:
        return PAPERS[self.paper]

    def tooltip(self) -> str:
        return f"{self.text} ({PAPERS[self.paper].split(',')[0]})"


TOGGLES: dict[str, ToggleHelp] = {
    # ExplainConfig fields
    "method": ToggleHelp(
        "Method", "How the saliency map is made: a trained masker (one forward pass), a mask optimised for this "
        "image, or a baseline such as Grad-CAM. Trained maskers are instant; per-image optimisation is slower "
        "but needs no training.", "phang"),
    "checkpoint": ToggleHelp(
        "Masker checkpoint", "The trained masker network that predicts the mask from the classifier's own "
        "activations (FIX) or from a co-trained classifier (CA). A checkpoint is tied to the classifier it was "
        "trained for, and one for another classifier is refused.", "phang"),
    "labels": ToggleHelp(
        "Target label", "Which class the explanation is about: the top prediction, the top k, or any classes "
        "you pick by name. Per-label methods make one mask per label; a label-agnostic masker gives one mask "
        "for all of them.", "gupta"),
    "infiller": ToggleHelp(
        "Infiller", "What replaces the removed pixels in the infilled view: gray, a blur, noise, the local "
        "mean, other images or inpainting. The classifier's answer on an infilled image depends on this "
        "choice, which is why FIDO compares several.", "fido"),
    "seed": ToggleHelp(
        "Seed", "The random seed of the explanation (random infills, random baselines). The same seed and "
        "options give the same result, which is what the cache relies on.", "phang"),
    "top_k_predictions": ToggleHelp(
        "Predictions shown", "How many of the classifier's labels are listed under each view. Five is what "
        "the papers report as top-5.", "phang"),
    # infiller options
    "sigma": ToggleHelp(
        "Blur sigma / Gaussian width", "For the blur infiller, the Gaussian blur's standard deviation in "
        "working pixels; for the centre-Gaussian baseline, the width as a fraction of the image. A larger "
        "blur removes more detail from the filled region.", "mp"),
    "std": ToggleHelp(
        "Noise std", "Standard deviation of the Gaussian noise added to a random colour in the noise "
        "infiller. FIDO uses it as a cheap out-of-distribution fill to compare against.", "fido"),
    "window": ToggleHelp(
        "Local-mean window", "Side of the square window whose kept pixels are averaged to fill a removed "
        "pixel. FIDO's LocalMean uses 15 x 15.", "fido"),
    "pool": ToggleHelp(
        "Reference images", "The random-image infiller fills removed pixels with another photo, here the "
        "other gallery photos. Gupta et al. train masks against random other images so they stay "
        "intrinsic to the image.", "gupta"),
    # optimisation options (per-image methods)
    "steps": ToggleHelp(
        "Steps", "How many optimisation steps (or integration steps, for Integrated Gradients) are run. "
        "More steps give a more settled result at a proportional cost in time.", "fido"),
    "tv_weight": ToggleHelp(
        "TV weight", "Weight of the total-variation penalty, which makes the mask smooth and blob-like. Too "
        "little gives speckled adversarial masks; too much blurs the object's outline.", "mp"),
    "l1_weight": ToggleHelp(
        "L1 (area) weight", "Weight of the penalty on the mask's area, which keeps the explanation small. "
        "Raising it asks for the smallest region that still explains the label.", "mp"),
    "area_weight": ToggleHelp(
        "Area weight", "Weight of the term that keeps the mask small. It trades the size of the mask "
        "against how well it keeps or removes the evidence.", "phang"),
    "upsample": ToggleHelp(
        "Upsampling factor", "The mask is optimised at a coarse resolution and upsampled by this factor. "
        "Coarser masks resist adversarial pixel patterns; finer ones follow the outline.", "mp"),
    "objective": ToggleHelp(
        "Objective", "Whether the mask must keep the evidence (masked-in: the label survives on the kept "
        "part), remove it (masked-out: the label disappears) or both. FIDO calls these SDR and SSR and "
        "Phang et al. combine both.", "fido"),
    "lr": ToggleHelp(
        "Learning rate", "Step size of the Adam optimiser that fits the mask. FIDO and Gupta et al. "
        "use 0.05.", "fido"),
    "temperature": ToggleHelp(
        "Concrete temperature", "Temperature of the binary Concrete relaxation used to sample near-binary "
        "masks. Lower values give harder masks and noisier gradients.", "fido"),
    "tau": ToggleHelp(
        "Concrete temperature", "Temperature of the binary Concrete relaxation used to sample near-binary "
        "masks. Lower values give harder masks and noisier gradients.", "fido"),
    "score": ToggleHelp(
        "Class score", "What the optimisation pushes up or down: the label's log-odds (FIDO), its log "
        "probability (Gupta et al.) or its probability (Fong & Vedaldi). Log-odds keep a gradient even when "
        "the classifier is already sure.", "fido"),
    "average": ToggleHelp(
        "Averaging of samples", "How the random samples of one step are combined: the mean of their scores "
        "(FIDO) or the score of their mean probability (Gupta et al., who average the softmax over random "
        "reference images). The second treats the fill as a distribution to integrate out.", "gupta"),
    "parametrization": ToggleHelp(
        "Mask parametrisation", "Continuous: the mask is a sigmoid of a learned map (Fong & Vedaldi, Gupta et "
        "al.); concrete: each pixel is dropped by a relaxed Bernoulli draw (FIDO). Concrete masks come out "
        "nearly binary.", "fido"),
    "tv_power": ToggleHelp(
        "TV power", "The exponent of the total-variation penalty |grad m|^p. Fong & Vedaldi use 3, FIDO and "
        "Gupta et al. use 2.", "mp"),
    "resolution": ToggleHelp(
        "Working resolution", "Short side of the copy of the image the classifier sees while the mask is "
        "optimised (the -paper presets use the full input). A smaller copy is much faster on a CPU at a small "
        "cost in detail.", "fido"),
    "lr_decay": ToggleHelp(
        "Learning-rate decay", "Decay the learning rate linearly to zero over the steps, as FIDO does. It "
        "lets the mask settle at the end.", "fido"),
    "warmup": ToggleHelp(
        "Regulariser warm-up", "Fraction of the steps over which the area and TV weights ramp up from zero. "
        "It lets the class term find the object before the mask is asked to shrink.", "fido"),
    "init": ToggleHelp(
        "Initial mask", "The mask value every pixel starts from (0.5 in Gupta et al.'s code). Starting high "
        "favours keeping evidence, starting low favours small masks.", "gupta"),
    "early_stop_tol": ToggleHelp(
        "Early-stop tolerance", "A label stops when its smoothed loss improves by less than this fraction; "
        "0 turns early stopping off. It saves time on easy labels without changing the method.", "fido"),
    "early_stop_patience": ToggleHelp(
        "Early-stop patience", "How many steps in a row without improvement stop a label. Larger values stop "
        "later and more safely.", "fido"),
    "samples": ToggleHelp(
        "Samples per step", "How many sampled masks or infills are averaged at each step. More samples "
        "give smoother gradients at a proportional cost.", "fido"),
    "batch_size": ToggleHelp(
        "Batch size", "How many images go through the classifier at once. It changes speed and memory, "
        "not the result.", "rise"),
    # baseline options
    "layer": ToggleHelp(
        "Grad-CAM layer", "Name of the convolutional layer whose activations and gradients are combined; "
        "empty means the last one. Deeper layers are more class-specific, shallower ones finer.", "gradcam"),
    "num_masks": ToggleHelp(
        "RISE masks", "Number of random masks whose classifier scores are averaged. The paper uses "
        "4000-8000; fewer is faster and noisier.", "rise"),
    "grid": ToggleHelp(
        "RISE grid", "Side of the coarse random grid that is upsampled into each mask. Small grids give "
        "blobby maps; large ones finer but noisier ones.", "rise"),
    "p": ToggleHelp(
        "RISE keep probability", "Probability that a grid cell is kept in a random mask. The paper uses "
        "0.5.", "rise"),
    "cell": ToggleHelp(
        "Random cell size", "Size in pixels of the cells of the random control map. It is a sanity "
        "baseline: a real method should beat it on every score.", "rise"),
    # per-label curves (label_scores options)
    "curve_steps": ToggleHelp(
        "Curve steps", "Number of points of each insertion curve: the most salient pixels are inserted "
        "into a gray image in this many steps. The dashboard uses 16 (Gupta et al. use 28).", "gupta"),
    "curve_top_k": ToggleHelp(
        "Curve labels", "How many of the top labels get a curve when the mask is shared by all labels. "
        "A single mask that is complete for every label cannot also be sound for all of them.", "gupta"),
    "eps1": ToggleHelp(
        "Completeness epsilon", "Floor on the insertion AUC in completeness = min(max(AUC, eps1) / f(x,a), 1). "
        "The paper uses 0.01.", "gupta"),
    "eps2": ToggleHelp(
        "Soundness epsilon", "Floor on the clean probability in soundness = min(max(f(x,a), eps2) / AUC, 1). "
        "The paper uses 0.001.", "gupta"),
    "restrict_to": ToggleHelp(
        "Softmax over the curve labels", "Compute probabilities with a softmax over the curve's labels "
        "only, as the paper's ImageNet runs do. It makes soundness much easier to reach.", "gupta"),
}

#: Papers of the registered methods, by method name (methods not listed show only their summary).
METHOD_PAPERS: dict[str, str] = {
    "masker": "phang", "fido": "fido", "meaningful-perturbation": "mp", "gupta": "gupta",
    "grad-cam": "gradcam", "gradient-x-input": "gxi", "integrated-gradients": "ig", "rise": "rise",
    "center-gaussian": "phang", "random": "rise",
}

#: Plain-language explanations of the views (Demo page and captions).
VIEW_HELP: dict[str, str] = {
    "overlay": "The heat map: bright areas are the evidence the method found for the label.",
    "masked_in": "Only the highlighted part is kept; everything else is gray.",
    "masked_out": "The highlighted part is removed (gray); the rest is kept.",
    "infilled": "The highlighted part is removed and filled in with the chosen infiller.",
}

VIEW_TITLES: dict[str, str] = {
    "overlay": "Mask overlay", "masked_in": "Masked in (kept)", "masked_out": "Masked out (removed)",
    "infilled": "Infilled",
}


def tooltip(name: str) -> str | None:
    """The widget tooltip of a toggle, or None for an option without a help entry."""
    entry = TOGGLES.get(name)
    return entry.tooltip() if entry else None
