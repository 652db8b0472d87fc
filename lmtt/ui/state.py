"""URL and session state: every key the app keeps per session, and the shareable URL.

Widgets store their values in ``st.session_state`` under the keys below; the URL (query
parameters) seeds them once per session and mirrors the routes tab's settings, so a copied link
reopens the same view. Nothing here is shared between sessions.
"""

from __future__ import annotations

import os

import streamlit as st

from lmtt.config import example_prompts
from lmtt.hosting import HostingError
from lmtt.models.catalog import load_model_catalog
from lmtt.ui.cache import settings

CUSTOM = "custom model name or local folder…"
SELECTION, PENDING = "selection", "_pending_selection"
# the routes' edge scores (lmtt.causal.scored); the first is the default
SCORES = ("knockout", "verified", "attribution", "proximity", "read")
REFUSED = "_refused"  # a refusal to show once (a URL asked for something not offered)


def offered_models() -> list[str]:
    """The models the sidebar offers: hosted mode's allow-list (by default the catalog), or
    the catalog and a free field in local mode."""
    s, catalog = settings(), load_model_catalog()
    if s.hosted:
        return list(s.models) if s.models is not None else catalog.names()
    return catalog.names()


def _model_from_url(model: str) -> None:
    offered = offered_models()
    if model in offered:
        st.session_state["model_choice"] = model
        return
    try:
        settings().check_model(model, offered)
    except HostingError as e:  # hosted: not loaded, and the same words for any name or path
        st.session_state[REFUSED] = str(e)
        return
    st.session_state["model_choice"] = CUSTOM
    st.session_state["custom_model"] = model


def init_from_url() -> None:
    """Seed widget state from the URL once per session (shareable links)."""
    if st.session_state.get("_url_loaded"):
        return
    st.session_state["_url_loaded"] = True
    q = st.query_params
    offered, default = offered_models(), load_model_catalog().default
    if "model" in q:
        _model_from_url(q["model"])
    elif offered:
        st.session_state["model_choice"] = default if default in offered else offered[0]
    st.session_state["prompt"] = q.get("prompt", example_prompts()[0])
    try:
        st.session_state["threshold"] = min(0.5, max(0.0, float(q.get("threshold", 0.04))))
    except ValueError:
        st.session_state["threshold"] = 0.04
    st.session_state["score"] = q["score"] if q.get("score") in SCORES else SCORES[0]
    st.session_state["foil"] = q.get("foil", "")[:100]
    if "target" in q and q["target"].lstrip("-").isdigit():
        st.session_state["target"] = int(q["target"])
    st.session_state["neuron_index"] = q.get("index", os.environ.get("LMTT_NEURON_INDEX", ""))
    if "sel" in q:
        st.session_state[SELECTION] = q["sel"]


def take_refusal() -> str:
    """A refusal to show (once), or ""."""
    return st.session_state.pop(REFUSED, "")


def use_prompt(key: str) -> None:
    """Callback: the widget ``key`` (an example or an uploaded line) becomes the prompt, and
    the target goes back to the new prompt's last token."""
    st.session_state["prompt"] = st.session_state[key]
    st.session_state.pop("target", None)


def default_target(prompt: str, n_tokens: int, default: int) -> None:
    """Target position: ``default`` for a new prompt (its last token, or a masked LM's first
    [MASK]); a URL's target is kept on first load."""
    first_load = st.session_state.get("_target_prompt") is None
    if st.session_state.get("_target_prompt") != prompt:
        if not (first_load and "target" in st.session_state):
            st.session_state["target"] = default
        st.session_state["_target_prompt"] = prompt
    if not 0 <= st.session_state.get("target", default) < n_tokens:
        st.session_state["target"] = default


def share_routes(chosen, target: int) -> None:
    """Mirror the routes tab's settings (``chosen``: the sidebar's) in the URL."""
    st.query_params.update(
        {
            "model": chosen.model,
            "prompt": chosen.prompt,
            "threshold": f"{chosen.threshold:g}",
            "target": str(target),
            "score": chosen.score,
        }
        | ({"index": chosen.neuron_index} if chosen.neuron_index else {})
        | ({"foil": chosen.foil} if chosen.foil else {})
    )


def chart_points(key: str) -> list[dict]:
    """The points a click selected on the chart with widget key ``key`` (empty if none)."""
    event = st.session_state.get(key) or {}
    return list((event.get("selection") or {}).get("points") or [])


def selection() -> str:
    """The id of the selected graph element ("" when none)."""
    return st.session_state.get(SELECTION) or ""


def open_head(layer: int, head: int) -> None:
    """Point the Attention tab's layer and head pickers at a head (a model-view click)."""
    st.session_state["attn_layer"], st.session_state["attn_head"] = layer, head


def pick_target(position: int) -> None:
    """A click on a column's triangle under the graph's token axis: that token becomes the
    target (the sidebar's picker follows), and the selection goes with the old routes."""
    st.session_state["target"] = position
    st.session_state[SELECTION] = ""


def select(element_id: str) -> None:
    """A click on a graph element selects it."""
    st.session_state[SELECTION] = element_id
    st.session_state.pop(PENDING, None)


def reconcile_selection(options: dict[str, str]) -> bool:
    """Keep the selection when its element is on the graph; otherwise set it aside (it comes
    back when a lower threshold brings the element back). True when it was set aside."""
    wanted = st.session_state.get(SELECTION) or st.session_state.get(PENDING)
    if wanted and wanted not in options:
        st.session_state[PENDING] = wanted
        st.session_state[SELECTION] = ""
        return True
    if wanted:
        select(wanted)
    return False


def share_selection() -> str:
    """The selected element id ("" when none), mirrored in the URL."""
    element_id = selection()
    if element_id:
        st.query_params["sel"] = element_id
    else:
        st.query_params.pop("sel", None)
    return element_id
