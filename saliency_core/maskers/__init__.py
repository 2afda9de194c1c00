"""Masker networks (one file per kind, registered in ``MASKER_KINDS``), the checkpoint format and the
catalogue of shipped checkpoints."""
from saliency_core.maskers.base import MASKER_KINDS, MaskerKind, masker_kind, register_masker_kind

__all__ = ["MASKER_KINDS", "MaskerKind", "masker_kind", "register_masker_kind"]
