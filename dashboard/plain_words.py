"""What the Demo page says, in plain words: what the classifier sees, how sure it is, and whether the
explanation worked for this picture (no jargon: no "saliency", no method names, no view titles)."""
from __future__ import annotations

#: Below this probability the classifier's answer is called unsure.
UNSURE = 0.40
#: A label "survives" a view when it keeps at least this share of its probability on the whole picture.
KEEPS = 0.5

#: View titles a non-specialist can read.
TITLES = {"overlay": "What it looked at", "masked_in": "Only the highlighted part",
          "masked_out": "Highlighted part removed", "infilled": "Removed part blurred over"}


def _q(name: str) -> str:
    return f"**\u201c{name}\u201d**"


def unsure(top_p: float) -> bool:
    """Whether an answer this sure is called unsure."""
    return top_p < UNSURE


def confidence(top_name: str, top_p: float, second_name: str | None, second_p: float) -> str:
    """One sentence on the classifier's answer, saying plainly when it is unsure."""
    if unsure(top_p):
        runner = f", and {_q(second_name)} comes close ({second_p:.0%})" if second_name and second_p >= top_p / 2 \
            else ""
        return (f"The classifier is **not sure**: its best guess is {_q(top_name)} with only {top_p:.0%}{runner}. "
                "An explanation of an unsure guess says little.")
    return f"The classifier says {_q(top_name)} ({top_p:.0%} sure). The coloured part is what it relied on."


def verdict(name: str, clean: float, kept: float, removed: float, unsure: bool = False) -> str:
    """Whether the highlight holds the evidence for the label, from its probability on the whole picture
    (``clean``), on the highlighted part alone (``kept``) and with the highlighted part removed (``removed``).
    ``unsure``: the classifier is not sure of the label (said before this): the verdict is no bold headline then,
    only a hedged sentence about that guess."""
    holds = kept >= KEEPS * clean
    needed = removed < KEEPS * clean
    if holds and needed:
        head, rest = "The explanation works here", (f"the highlighted part alone is enough for {_q(name)}, "
                                                    "and without it the classifier no longer sees it.")
    elif holds:
        head, rest = "Partly", (f"the highlighted part alone is enough for {_q(name)}, but the rest of the picture "
                                "is enough too: the classifier finds the evidence in more than one place.")
    elif needed and kept >= 0.2 * clean:
        head, rest = "Partly", (f"removing the highlighted part takes {_q(name)} away, but the highlighted part "
                                "alone is not enough: the classifier also uses what is around it.")
    elif needed:
        head, rest = "This explanation did not work for this picture", (
            f"{_q(name)} disappears both when only the highlighted part is kept and when it is removed, so these "
            "pictures cannot tell where the evidence is.")
    else:
        head, rest = "This explanation did not work for this picture", (
            f"{_q(name)} survives when the highlighted part is removed but not when only that part is kept: the "
            "highlight misses the evidence.")
    if unsure:
        return f"As the guess itself is unsure, take this lightly. {head}, if the guess is right: {rest}"
    return f"**{head}:** {rest}"


def view_sentence(view: str, name: str, clean: float, now_name: str, now_p: float, p: float) -> str:
    """What the classifier says on one view, compared with the whole picture."""
    when = {"masked_in": "when it sees only the highlighted part",
            "masked_out": "when the highlighted part is removed",
            "infilled": "when the highlighted part is removed and blurred over"}[view]
    if now_name == name:
        return f"It still says {_q(name)} ({p:.0%}) {when}."
    return f"It says {_q(now_name)} ({now_p:.0%}) {when}; {_q(name)} drops to {p:.0%}."


#: How each group of methods finds the highlight, in plain words (groups are what methods declare).
HOW = {"Trained masker": "a small network trained to show what this classifier relies on",
       "Per-image optimisation": "a search for the smallest part of this picture that keeps the answer",
       "Gradient baseline": "how strongly each pixel moves the classifier's answer",
       "Perturbation baseline": "how the classifier's answer changes when random parts of the picture are hidden",
       "Control": "a fixed reference pattern that ignores the classifier (for comparison only)"}


def how(group: str) -> str:
    return "The highlight comes from " + HOW.get(group, "the chosen method") + "."
