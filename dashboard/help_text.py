"""Two sentences per toggle and the paper it comes from: shown as widget tooltips and on the Help page.

Keys are the names of the dashboard's own controls (``ExplainConfig`` fields and ``label_scores``
options). The options of methods and infillers carry their help in their own declaration
(:func:`saliency_core.options.option`), so it is written once, beside the code.
"""
from __future__ import annotations

from dataclasses import dataclass

PAPERS: dict[str, str] = {
    "phang2020": "Phang, Park & Geras (2020), *Investigating and Simplifying Masking-based Saliency Methods for "
             "Model Interpretability*",
    "zolna2020": "Zolna, Geras & Cho (2020), *Classifier-agnostic saliency map extraction* (CASM)",
    "chang2019": "Chang, Creager, Goldenberg & Duvenaud (2019), *Explaining Image Classifiers by Counterfactual "
            "Generation* (FIDO)",
    "fong2017": "Fong & Vedaldi (2017), *Interpretable Explanations of Black Boxes by Meaningful Perturbation*",
    "gupta2022": "Gupta, Saunshi, Yu, Lyu & Arora (2022), *New Definitions and Evaluations for Saliency Methods: "
             "Staying Intrinsic, Complete and Sound*",
    "dabkowski2017": "Dabkowski & Gal (2017), *Real Time Image Saliency for Black Box Classifiers*",
    "petsiuk2018": "Petsiuk, Das & Saenko (2018), *RISE: Randomized Input Sampling for Explanation of Black-box "
                   "Models*",
    "selvaraju2017": "Selvaraju et al. (2017), *Grad-CAM: Visual Explanations from Deep Networks*",
    "sundararajan2017": "Sundararajan, Taly & Yan (2017), *Axiomatic Attribution for Deep Networks* "
                        "(Integrated Gradients)",
    "shrikumar2016": "Shrikumar et al. (2016), *Not Just a Black Box* (gradient x input)",
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
        "but needs no training.", "phang2020"),
    "labels": ToggleHelp(
        "Target label", "Which class the explanation is about: the top prediction, the top k, or any classes "
        "you pick by name. Per-label methods make one mask per label; a label-agnostic masker gives one mask "
        "for all of them.", "gupta2022"),
    "infiller": ToggleHelp(
        "Infiller", "What replaces the removed pixels in the infilled view: gray, a blur, noise, the local "
        "mean, other images or inpainting. The classifier's answer on an infilled image depends on this "
        "choice, which is why FIDO compares several.", "chang2019"),
    "seed": ToggleHelp(
        "Seed", "The random seed of the explanation (random infills, random baselines). The same seed and "
        "options give the same result, which is what the cache relies on.", "phang2020"),
    "top_k_predictions": ToggleHelp(
        "Predictions shown", "How many of the classifier's labels are listed under each view. Five is what "
        "the papers report as top-5.", "phang2020"),
    # per-label curves (label_scores options)
    "curve_steps": ToggleHelp(
        "Curve steps", "Number of points of each insertion curve: the most salient pixels are inserted "
        "into a gray image in this many steps. The dashboard uses 16 (Gupta et al. use 28).", "gupta2022"),
    "eps1": ToggleHelp(
        "Completeness epsilon", "Floor on the insertion AUC in completeness = min(max(AUC, eps1) / f(x,a), 1). "
        "The paper uses 0.01.", "gupta2022"),
    "eps2": ToggleHelp(
        "Soundness epsilon", "Floor on the clean probability in soundness = min(max(f(x,a), eps2) / AUC, 1). "
        "The paper uses 0.001.", "gupta2022"),
    "restrict_to": ToggleHelp(
        "Softmax over the curve labels", "Compute probabilities with a softmax over the curve's labels "
        "only, as the paper's ImageNet runs do. It makes soundness much easier to reach.", "gupta2022"),
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


#: Choice values said in plain words wherever they are offered (the value itself stays in the code, the CLI and
#: links): the objectives of the maskers and of per-image optimisation.
PLAIN_CHOICES: dict[str, str] = {"ssr": "keep the class", "sdr": "remove the class", "both": "both"}


def plain_choice(value: object) -> str:
    """A choice as a menu shows it: its plain words when it has them, else the value itself."""
    return PLAIN_CHOICES.get(value, str(value)) if isinstance(value, str) else str(value)


def tooltip(name: str) -> str | None:
    """The widget tooltip of a toggle, or None for an option without a help entry."""
    entry = TOGGLES.get(name)
    return entry.tooltip() if entry else None
