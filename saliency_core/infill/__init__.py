"""Infillers (one file each, registered in ``INFILLERS``), composites and the reference-photo pool."""
from saliency_core.infill.base import (
                                       INFILLERS,
                                       Infiller,
                                       InfillerError,
                                       create_infiller,
                                       infiller_entry,
                                       list_infillers,
                                       register_infiller,
)
from saliency_core.infill.composite import composite, masked_in, masked_out

__all__ = ["INFILLERS", "Infiller", "InfillerError", "create_infiller", "infiller_entry", "list_infillers",
           "register_infiller", "composite", "masked_in", "masked_out"]
