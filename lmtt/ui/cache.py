"""Process-wide caches. Models load once per process; traces and routes are cached per
(model, prompt, settings) with a bounded size. Traces and route graphs are immutable, so
sessions can share them without seeing each other's state."""

from __future__ import annotations

import streamlit as st

from lmtt import contributions as C
from lmtt.graph import routes
from lmtt.models import LoadedModel, load_model
from lmtt.trace import Trace, run_trace


@st.cache_resource(max_entries=3, show_spinner=False)
def get_model(spec: str, device: str, dtype: str) -> LoadedModel:
    return load_model(spec, device=device, dtype=dtype)


@st.cache_resource(max_entries=32, show_spinner=False)
def get_trace(model_key: tuple, prompt: str, _model: LoadedModel) -> Trace:
    return run_trace(_model, prompt)


@st.cache_resource(max_entries=64, show_spinner=False)
def get_routes(trace_key: tuple, target: int, threshold: float, renorm: bool, _trace: Trace):
    return routes(_trace, [target], threshold, threshold if renorm else None)


@st.cache_resource(max_entries=64, show_spinner=False)
def get_layer_contributions(trace_key: tuple, layer: int, renorm: float | None, _trace: Trace):
    """Attention contributions of every query of one layer (for the contribution map)."""
    return C.attention_contributions(_trace, layer, None, renorm)
