"""What decides an explanation, declared once: :class:`ExplainConfig`.

Each field is an :func:`~saliency_core.options.option` (default, help, range or choices), checked in one place
(``__post_init__``) and frozen. ``saliency explain`` draws its flags' defaults and help from these declarations,
and this module imports no torch, so ``saliency explain --help`` reads them at once.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from saliency_core.images.colormaps import COLORMAPS
from saliency_core.labels import LABELS_HELP, parse_labels
from saliency_core.options import check_options, option

#: The fill of the infilled view when none is chosen (and of the optimisation methods' presets that say so).
DEFAULT_INFILLER = "blur"


@dataclass(frozen=True)
class ExplainConfig:
    """Everything that decides an explanation (shared by the CLI, the Python API and the dashboard)."""

    method: str = option("masker", help="the saliency method (saliency explain --list-methods lists them)")
    method_options: dict[str, Any] = option(default_factory=dict, shown=False,
                                            help="the method's own options (-o name=value), checked by the method")
    labels: str = option("top1", help=f"labels to explain: {LABELS_HELP}")
    infiller: str = option(DEFAULT_INFILLER, kind="infiller",
                           help="fill of the infilled view (saliency explain --list-infillers lists them)")
    infiller_options: dict[str, Any] = option(default_factory=dict, shown=False,
                                              help="the infiller's own options, checked by the infiller")
    top_k_predictions: int = option(5, low=1, help="predictions listed per view")
    seed: int = option(0, low=0, help="seed of every random choice (of the method and the infiller that declare "
                                      "a seed option): the same seed gives the same mask")
    overlay_opacity: float = option(0.7, low=0.0, high=1.0, help="how much of the photo the mask's colour covers "
                                                                 "where the mask is 1")
    colormap: str = option(COLORMAPS[0], choices=COLORMAPS, help="colour map of the overlay")

    def __post_init__(self) -> None:
        if not isinstance(self.labels, str) and self.labels is not None:  # class indices given as numbers
            object.__setattr__(self, "labels", str(parse_labels(self.labels)))
        check_options(self, "explain")
        parse_labels(self.labels)  # a bad choice is one line now, before any work

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
