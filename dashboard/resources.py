"""Heavy objects, loaded once per process with ``st.cache_resource`` and never mutated.

The classifier is frozen and in eval mode; methods keep their own caches (a masker method its
loaded checkpoint, Grad-CAM its private hooked copy of the network behind a lock), so sessions
share them safely. Explanations and scores live in one shared :class:`ResultCache`.
"""
from __future__ import annotations

import json

import streamlit as st

from dashboard.settings import DashboardSettings
from saliency_core import Classifier, ExplainConfig, Method, load_classifier, mask_key_options

from . import services


def settings() -> DashboardSettings:
    """The dashboard's settings (from ``saliency dashboard`` via the environment); cheap to re-read."""
    return DashboardSettings.from_env()


@st.cache_resource(show_spinner="Loading the classifier (once per server)...")
def classifier(name: str, weights: str, device: str) -> Classifier:
    return load_classifier(name, weights or None, device=device)


def current_classifier() -> Classifier:
    s = settings()
    return classifier(s.classifier, s.classifier_weights, s.device)


@st.cache_resource(show_spinner=False, max_entries=32)
def _method(name: str, options_json: str) -> Method:
    return services.build_method(name, json.loads(options_json))


def method(config: ExplainConfig) -> Method:
    """A shared method object for an explanation's method and options, with its seed where the method declares
    one (building it is cheap; loading happens on first use)."""
    return _method(config.method, json.dumps(mask_key_options(config), sort_keys=True, default=str))


@st.cache_resource(show_spinner=False)
def _results(max_entries: int) -> services.ResultCache:
    return services.ResultCache(max_entries)


def results() -> services.ResultCache:
    return _results(settings().cache_entries)


@st.cache_resource(show_spinner=False, max_entries=16)
def gallery_input(name: str) -> services.ImageInput:
    return services.gallery_input(name)


@st.cache_resource(show_spinner=False, max_entries=4)
def _catalog(names: tuple[tuple[str, bool], ...]) -> dict[str, services.MethodEntry]:
    return services.method_catalog()


def catalog() -> dict[str, services.MethodEntry]:
    """The methods registered right now (re-read when the registry changes, or when a method's
    availability does, e.g. the per-label masker's checkpoint appears)."""
    from saliency_core import method_entries

    return _catalog(tuple((name, entry.available) for name, entry in method_entries().items()))
