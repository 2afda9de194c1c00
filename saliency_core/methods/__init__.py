"""Saliency methods (registered in ``METHODS``): trained maskers, per-image optimisation, gradient
baselines, RISE and label-free controls."""
from saliency_core.methods.base import (
                                        GROUPS,
                                        METHODS,
                                        Method,
                                        MethodError,
                                        MethodResult,
                                        create_method,
                                        list_methods,
                                        method_entries,
                                        method_entry,
                                        register_method,
)

__all__ = ["GROUPS", "METHODS", "Method", "MethodError", "MethodResult", "create_method", "list_methods",
           "method_entries", "method_entry", "register_method"]
