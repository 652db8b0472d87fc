"""Every Streamlit cache of the app, in one place.

Models load once per process; traces, routes, maps, index handles and diagrams are cached per
(model, prompt, settings) with a bounded size. Everything cached is immutable, so sessions can
share it without seeing each other's state. Arguments starting with ``_`` are not hashed: the
key arguments before them identify the entry.
"""

from __future__ import annotations

import streamlit as st

from lmtt.attention.qk_map import CorpusMap, corpus_query_key_map, query_key_map
from lmtt.attention.views import capture_attention
from lmtt.errors import LmttError
from lmtt.flow import contributions as C
from lmtt.flow.graph import routes
from lmtt.index.context_index import ContextIndex
from lmtt.index.neuron_store import NeuronIndex, open_index
from lmtt.models import LoadedModel, load_model
from lmtt.models.trace import Trace, run_trace
from lmtt.viz import static


@st.cache_resource(max_entries=3, show_spinner=False)
def get_model(spec: str, device: str, dtype: str) -> LoadedModel:
    return load_model(spec, device=device, dtype=dtype)


@st.cache_resource(max_entries=32, show_spinner=False)
def get_trace(model_key: tuple, prompt: str, _model: LoadedModel) -> Trace:
    """The routes tab's trace (what lmtt.flow reads)."""
    return run_trace(_model, prompt)


@st.cache_resource(max_entries=64, show_spinner=False)
def get_routes(trace_key: tuple, target: int, threshold: float, renorm: bool, _trace: Trace):
    return routes(_trace, [target], threshold, threshold if renorm else None)


@st.cache_resource(max_entries=64, show_spinner=False)
def get_layer_contributions(trace_key: tuple, layer: int, renorm: float | None, _trace: Trace):
    """Attention contributions of every query of one layer (for the contribution map)."""
    return C.attention_contributions(_trace, layer, None, renorm)


@st.cache_resource(max_entries=16, show_spinner=False)
def get_attention_trace(model_key: tuple, prompt: str, _model) -> Trace:
    """Patterns, queries and keys of every layer: one forward pass serves the attention views
    and the masked-LM tab (its logits are the masked-LM predictions)."""
    return capture_attention(_model, prompt)


@st.cache_resource(max_entries=8, show_spinner=False)
def get_prompts_map(model_key: tuple, prompts: tuple[str, ...], layer: int, head: int,
                    method: str, _model):  # fmt: skip
    """(QueryKeyMap or None, messages of the prompts that could not be mapped)."""
    traces, used, skipped = [], [], []
    for p in prompts:
        try:
            traces.append(capture_attention(_model, p, layers=[layer]))
            used.append(p)
        except LmttError as e:
            skipped.append(str(e))
    if not traces:
        return None, skipped
    return query_key_map(traces, used, layer, head, method), skipped


@st.cache_resource(max_entries=8, show_spinner=False)
def get_corpus_map(model_key: tuple, corpus: str, layer: int, head: int, method: str,
                   max_tokens: int, _model) -> CorpusMap:  # fmt: skip
    return corpus_query_key_map(_model, corpus, layer, head, method, max_tokens)


@st.cache_resource(max_entries=4, show_spinner=False)
def get_neuron_index(folder: str) -> NeuronIndex:
    return open_index(folder)


@st.cache_resource(max_entries=4, show_spinner=False)
def get_context_index(folder: str) -> ContextIndex:
    return ContextIndex(folder)


@st.cache_data(max_entries=256, show_spinner=False)
def get_diagram_png(model_key: tuple, prompt: str, layer: int, head: int, _trace: Trace) -> bytes:
    """One head's masked-LM diagram, drawn once per prompt (every app rerun runs every tab)."""
    title = f"Layer {layer}, head {head}"
    pattern = _trace.pattern(layer)[head]
    return static.figure_bytes(static.attention_diagram(pattern, list(_trace.token_strs), title))
