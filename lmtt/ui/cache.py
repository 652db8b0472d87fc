"""Every cache of the app, in one place, and the way each computation reaches the model.

- Models load once per process (Streamlit's resource cache, a few at a time).
- Everything else (traces, routes, contributions, maps, index handles, matches, diagrams)
  lives in one process-wide :class:`~lmtt.ui.budget.ByteBudgetCache`: one budget in bytes
  (``cache_mb``), the least recently used entry evicted first. Entries are immutable, so
  sessions share them without seeing each other's state.
- A computation that runs the model first counts as one of the visitor's runs (hosted mode
  caps them per minute), then waits for its turn at the model, first come first served,
  showing "Waiting for the model (N ahead)" meanwhile.

Arguments starting with ``_`` are not part of the cache key: the key arguments before them
identify the entry.
"""

from __future__ import annotations

import os
import threading
import time
from functools import lru_cache

import streamlit as st

from lmtt.attention.qk_map import CorpusMap, corpus_query_key_map, query_key_map
from lmtt.attention.views import capture_attention
from lmtt.errors import LmttError
from lmtt.flow import contributions as C
from lmtt.flow.graph import routes
from lmtt.hosting import HostSettings, load_host_settings
from lmtt.index.context_index import ContextIndex, search_token
from lmtt.index.neuron_store import NeuronIndex, open_index
from lmtt.memory import release_free_memory
from lmtt.models import LoadedModel, load_model
from lmtt.models.trace import Trace, run_trace
from lmtt.ui.budget import ByteBudgetCache
from lmtt.ui.gate import ModelGate, RunLimiter
from lmtt.viz import static

_ENV_KEYS = ("LMTT_SETTINGS", "LMTT_MODE", "LMTT_MODELS", "LMTT_DATA_FOLDERS",
             "LMTT_MAX_PROMPT_CHARS", "LMTT_MAX_PROMPT_TOKENS", "LMTT_MAX_UPLOAD_BYTES",
             "LMTT_RUNS_PER_MINUTE", "LMTT_CACHE_MB")  # fmt: skip
_lock = threading.Lock()
_shared: dict = {}  # the process-wide cache, gates and limiter of the current settings


def settings() -> HostSettings:
    """The hosting settings (read again only when the environment changes)."""
    return _settings(tuple(os.environ.get(k) for k in _ENV_KEYS))


@lru_cache(maxsize=4)
def _settings(_env: tuple) -> HostSettings:
    return load_host_settings()


def _state() -> dict:
    """The cache, gates and limiter (made anew when the settings change)."""
    s = settings()
    with _lock:
        if _shared.get("settings") != s:
            _shared.clear()
            _shared.update(settings=s, cache=ByteBudgetCache(s.cache_bytes), gates={},
                           limiter=RunLimiter(s.runs_per_minute))  # fmt: skip
        return _shared


def data_cache() -> ByteBudgetCache:
    return _state()["cache"]


def _gate(model_key: tuple) -> ModelGate:
    state = _state()
    with _lock:
        return state["gates"].setdefault(model_key, ModelGate())


def visitor() -> str:
    """Who is asking: the connection's IP address, or (on localhost) the session."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ip = st.context.ip_address
    if isinstance(ip, str) and ip:
        return ip
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else "local"


def _model_run(model_key: tuple, token, compute):
    """Run ``compute`` (which uses the model) as the visitor's run ``token``, in turn."""
    _state()["limiter"].record(visitor(), token)
    box = []

    def show(ahead: int) -> None:
        if not box:
            box.append(st.empty())
        box[0].info(f"Waiting for the model ({ahead} ahead)…")

    start = time.perf_counter()
    with _gate(model_key).turn(show) as ahead:
        waited = time.perf_counter() - start
        if box:
            box[0].caption(f"Waited {waited:.1f} s for the model ({ahead} ahead).")
        try:
            return compute()
        finally:
            release_free_memory()  # what the run's passes freed goes back to the system


def cached(key: tuple, compute, model_key: tuple | None = None, run: object = None):
    """``compute()`` through the shared cache; with ``model_key``, as a run of that model
    (named ``run``, by default the key: the views of one prompt share one run)."""
    if model_key is None:
        return data_cache().get_or_compute(key, compute)
    token = key if run is None else run
    return data_cache().get_or_compute(key, lambda: _model_run(model_key, token, compute))


@st.cache_resource(max_entries=3, show_spinner=False)
def get_model(spec: str, device: str, dtype: str) -> LoadedModel:
    return load_model(spec, device=device, dtype=dtype)


def get_trace(model_key: tuple, prompt: str, _model: LoadedModel) -> Trace:
    """The routes tab's trace (what lmtt.flow reads)."""
    compute = lambda: run_trace(_model, prompt)  # noqa: E731
    return cached(("trace", model_key, prompt), compute, model_key, run=(model_key, prompt))


def get_routes(
    trace_key: tuple, target: int, threshold: float, renorm: bool, _trace: Trace, device=None
):
    """The lazy routes to ``target``; the kernel runs on ``device`` (the model's: see
    lmtt.flow.graph.kernel_device), by default the CPU."""
    key = ("routes", trace_key, target, threshold, renorm)
    renorm_at = threshold if renorm else None
    return cached(key, lambda: routes(_trace, [target], threshold, renorm_at, device=device))


def _metric(model: LoadedModel, trace: Trace, target: int, foil: str):
    from lmtt.causal.metric import make_metric

    return make_metric(model, trace, foil=foil or None, position=target)


def get_scored_routes(trace_key: tuple, target: int, threshold: float, score: str, foil: str,
                      _model: LoadedModel, _trace: Trace):  # fmt: skip
    """Routes scored by ``knockout`` or ``attribution`` (forward passes: a run of the model)."""
    from lmtt.causal.scored import routes as scored_routes

    def compute():
        metric = _metric(_model, _trace, target, foil)
        return scored_routes(_model, _trace, metric, threshold, score)

    key = ("scored routes", trace_key, target, threshold, score, foil)
    return cached(key, compute, trace_key[0])  # a run of its own: a sweep of forward passes


def get_knockout(trace_key: tuple, target: int, foil: str, removed: tuple, _model, _trace):
    """The prediction before and after the interventions ``removed`` (lmtt.causal.knockout)."""
    from lmtt.causal.knockout import knock_out

    def compute():
        return knock_out(_model, _trace, removed, _metric(_model, _trace, target, foil))

    return cached(("knockout", trace_key, target, foil, removed), compute, trace_key[0])


def get_verification(trace_key: tuple, graph_key: tuple, foil: str, _graph, _model, _trace):
    """(edge effects of ``_graph``, faithfulness of it and of the curve's graphs): the
    graph is named by ``graph_key`` (target, threshold, score, renormalize)."""
    from lmtt.causal.edges import verify_edges
    from lmtt.causal.faithfulness import CURVE, faithfulness
    from lmtt.causal.scored import route_graphs

    def compute():
        metric = _metric(_model, _trace, _graph.target_positions[0], foil)
        curve = route_graphs(_model, _trace, metric, CURVE, _graph.score)
        effects = verify_edges(_model, _trace, _graph, metric)
        return effects, faithfulness(_model, _trace, [_graph, *curve], metric)

    return cached(("verify", trace_key, graph_key, foil), compute, trace_key[0])


def _score_trace(model_key: tuple, prompt: str, model) -> Trace:
    """A trace with the queries and keys and their norms' scales (lmtt.flow.score)."""
    from lmtt.flow.score import score_kinds

    compute = lambda: run_trace(model, prompt, capture=score_kinds(model.family))  # noqa: E731
    return cached(("score trace", model_key, prompt), compute, model_key, run=(model_key, prompt))


def get_qk_routes(model_key: tuple, prompt: str, graph_key: tuple, _graph, _model):
    """``_graph`` (named by ``graph_key``) with its key and query edges."""
    from lmtt.flow.qk_routes import with_qk_edges

    t = _score_trace(model_key, prompt, _model)
    key = ("qk routes", model_key, prompt, graph_key)
    return cached(key, lambda: with_qk_edges(t, _graph), model_key)  # in turn, as a run


def get_score_decomposition(model_key: tuple, prompt: str, layer: int, head: int, query: int,
                            key: int, other: int | None, _model):  # fmt: skip
    """One head's score split over upstream parts (lmtt.flow.score), from a trace with the
    queries and keys (one more forward pass per prompt, shared by every edge)."""
    from lmtt.flow.score import score_decomposition

    t = _score_trace(model_key, prompt, _model)
    key_ = ("score", model_key, prompt, layer, head, query, key, other)
    return cached(key_, lambda: score_decomposition(t, layer, head, query, key, other))


def get_layer_contributions(trace_key: tuple, layer: int, renorm: float | None, _trace: Trace,
                            queries: tuple[int, ...] | None = None):  # fmt: skip
    """Attention contributions of the ``queries`` (default: every query) of one layer (for
    the contribution map)."""
    key = ("layer contributions", trace_key, layer, renorm, queries)
    q = None if queries is None else list(queries)
    return cached(key, lambda: C.attention_contributions(_trace, layer, q, renorm))


def get_attention_trace(model_key: tuple, prompt: str, _model) -> Trace:
    """Patterns, queries and keys of every layer: one forward pass serves the attention views
    and the masked-LM tab (its logits are the masked-LM predictions)."""
    key = ("attention trace", model_key, prompt)
    compute = lambda: capture_attention(_model, prompt)  # noqa: E731
    return cached(key, compute, model_key, run=(model_key, prompt))


def get_head_catalogue(model_key: tuple, prompts: tuple[str, ...], _model):
    """The head catalogue over ``prompts`` (lmtt.attention.heads): a run of the model."""
    from lmtt.attention.heads import head_catalogue

    return cached(("heads", model_key, prompts), lambda: head_catalogue(_model, prompts),
                  model_key)  # fmt: skip


def get_prompts_map(model_key: tuple, prompts: tuple[str, ...], layer: int, head: int,
                    method: str, _model):  # fmt: skip
    """(QueryKeyMap or None, messages of the prompts that could not be mapped)."""

    def compute():
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

    return cached(("prompts map", model_key, prompts, layer, head, method), compute, model_key)


def get_corpus_map(model_key: tuple, corpus: str, layer: int, head: int, method: str,
                   max_tokens: int, _model) -> CorpusMap:  # fmt: skip
    key = ("corpus map", model_key, corpus, layer, head, method, max_tokens)
    compute = lambda: corpus_query_key_map(_model, corpus, layer, head, method, max_tokens)  # noqa: E731
    return cached(key, compute, model_key)


def get_neuron_index(folder: str) -> NeuronIndex:
    return cached(("neuron index", folder), lambda: open_index(folder))


def get_batch(folder: str):
    """A batch folder's tables (lmtt.index.batch_store)."""
    from lmtt.index.batch_store import open_batch

    return cached(("batch", folder), lambda: open_batch(folder))


def get_batch_ranking(folder: str, by: str, layer: int, unit: int, _batch):
    """The prompts ranked by one head's (``by`` "head") or neuron's contribution."""
    rank = _batch.prompts_by_head if by == "head" else _batch.prompts_by_neuron
    return cached(("batch ranking", folder, by, layer, unit), lambda: rank(layer, unit, 50))


def get_context_index(folder: str) -> ContextIndex:
    return cached(("context index", folder), lambda: ContextIndex(folder))


def get_context_matches(model_key: tuple, folder: str, prompt: str, position: int, layer: int,
                        k: int, _model, _index: ContextIndex):  # fmt: skip
    key = ("context matches", model_key, folder, prompt, position, layer, k)
    compute = lambda: search_token(_model, _index, prompt, position, layer, k)  # noqa: E731
    return cached(key, compute, model_key)


def get_diagram_png(model_key: tuple, prompt: str, layer: int, head: int, _trace: Trace) -> bytes:
    """One head's masked-LM diagram, drawn once per prompt (every app rerun runs every tab)."""

    def draw() -> bytes:
        title = f"Layer {layer}, head {head}"
        pattern = _trace.pattern(layer)[head]
        figure = static.attention_diagram(pattern, list(_trace.token_strs), title)
        return static.figure_bytes(figure)

    return cached(("diagram", model_key, prompt, layer, head), draw)
