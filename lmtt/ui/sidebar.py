"""Sidebar: model, prompt, threshold and display settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import streamlit as st

from lmtt.config import example_prompts
from lmtt.errors import LmttError
from lmtt.index.neuron_store import MANIFEST
from lmtt.models.catalog import load_model_catalog
from lmtt.ui import state
from lmtt.ui.cache import settings
from lmtt.ui.paths import path_input
from lmtt.ui.state import CUSTOM


@dataclass(frozen=True)
class Settings:
    model: str
    device: str
    dtype: str
    prompt: str
    threshold: float
    renormalize: bool
    final_norm: bool
    neuron_index: str = ""
    score: str = "knockout"
    foil: str = ""  # as typed: a leading space is part of a GPT-2 token
    qk_edges: bool = False  # draw the key and query edges of the attention edges
    collapse: bool = True  # draw only the positions the routes touch
    # where the Routes tab puts its target picker: right under the prompt (a sidebar container)
    target_slot: object = field(default=None, compare=False, hash=False, repr=False)

    @property
    def metric_foil(self) -> str:
        """The foil token, or "" for none (blank)."""
        return self.foil if self.foil.strip() else ""


def sidebar() -> Settings:
    state.init_from_url()
    model, device, dtype = _model_section(st.sidebar)
    prompt = _prompt_section(st.sidebar)
    target_slot = st.sidebar.container()  # the Routes tab's target picker, under the prompt
    threshold, renormalize, final_norm, index = _routes_section(st.sidebar)
    score, foil = _score_section(st.sidebar)
    qk_edges = st.sidebar.toggle(
        "key and query edges",
        key="qk_edges",
        help="for every attention edge, dashed edges from the parts that made its score: "
        "what the key at the source and the query at the target were built from",
    )
    collapse = st.sidebar.toggle(
        "only positions on the routes",
        value=True,
        key="collapse",
        help="draw a column for each position the routes touch (positions skipped are "
        "marked ⋯ on the axis); off: every token (a prompt of over 64 tokens still shows "
        "only the positions on the routes)",
    )
    return Settings(model, device, dtype, prompt, float(threshold), renormalize, final_norm, index,
                    score, foil, qk_edges, collapse, target_slot)  # fmt: skip


def _model_section(sb) -> tuple[str, str, str]:
    catalog, hosted = load_model_catalog(), settings().hosted
    sb.header("Model")
    options = state.offered_models() + ([] if hosted else [CUSTOM])
    choice = sb.selectbox(
        "model",
        options,
        key="model_choice",
        help="Hub models need internet the first time; the demo model works offline.",
    )
    entry = catalog.get(choice)
    if entry is not None and entry.description:
        sb.caption(entry.description)
    model = choice
    if choice == CUSTOM:
        model = sb.text_input("hub name or folder", key="custom_model").strip()
    col1, col2 = sb.columns(2)
    device = col1.selectbox("device", ["auto", "cpu", "cuda"], key="device")
    dtype = col2.selectbox("dtype", ["float32", "bfloat16", "float16"], key="dtype")
    return model, device, dtype


def _prompt_section(sb) -> str:
    sb.header("Prompt")
    sb.selectbox(
        "examples",
        example_prompts(),
        key="example",
        on_change=partial(state.use_prompt, "example"),
        format_func=lambda p: p.replace("\n", " ⏎ ")[:60],
    )
    upload = sb.file_uploader(
        "prompts file (one per line, or one long prompt)",
        type=["txt"],
        help="a UTF-8 text file: pick one of its lines, or use the whole file as one prompt",
    )
    if upload is not None:
        try:
            settings().check_upload(upload.size)
            text = upload.getvalue().decode("utf-8", "replace")
            lines = [ln for ln in text.splitlines() if ln]
        except LmttError as e:
            sb.error(str(e))
            text, lines = "", []
        if text.strip():
            st.session_state["uploaded_text"] = text
            sb.button("use the whole file as the prompt", key="use_whole_file",
                      on_click=partial(state.use_prompt, "uploaded_text"))  # fmt: skip
        if lines:
            sb.selectbox(
                "uploaded prompts",
                lines,
                key="uploaded_prompt",
                on_change=partial(state.use_prompt, "uploaded_prompt"),
                format_func=lambda p: p[:60],
            )
    return sb.text_area("prompt", key="prompt", height=150)


SCORE_HELP = {
    "knockout": "candidate edges (of the attribution and proximity routes) each removed in a "
    "real forward pass; the weight is the measured effect, a signed share of the metric's span "
    "(the default: every kept edge has an effect)",
    "verified": "the proximity routes with everything else removed, each edge then removed "
    "too, keeping those that move the metric by 1% of its span or more (an edge redundant with "
    "another path counts here; these routes keep more of the prediction)",
    "attribution": "a gradient estimate of each edge's removal (one backward pass); signed",
    "proximity": "how much a part resembles the whole it builds (LM-TT's score; no forward "
    "passes, no sign)",
    "read": "proximity, each part weighted by the share of it its reader reads (the "
    "prediction's direction, a head's value map); no forward passes, no sign",
}


def _score_section(sb) -> tuple[str, str]:
    score = sb.selectbox(
        "edge score",
        list(state.SCORES),
        key="score",
        help=" · ".join(f"**{k}**: {v}" for k, v in SCORE_HELP.items()),
    )
    foil = sb.text_input(
        "foil token (optional)",
        key="foil",
        help="with a foil, the routes explain why the prediction beats it: logit(prediction) "
        "- logit(foil); edges against the prediction are drawn in violet",
        disabled=score == "proximity",
    )
    return score, foil if score != "proximity" else ""


def _routes_section(sb) -> tuple[float, bool, bool, str]:
    sb.header("Routes")
    threshold = sb.slider(
        "threshold",
        0.0,
        0.5,
        step=0.005,
        key="threshold",
        help="keep edges whose contribution is above this",
    )
    renormalize = sb.toggle(
        "renormalise after threshold",
        key="renormalize",
        help="zero contributions below the threshold, renormalise the rest",
    )
    final_norm = sb.toggle("apply final norm before unembedding", value=True, key="final_norm")
    sb.header("Neuron index")
    index = path_input(
        "index folder",
        "neuron_index",
        settings().offered_indexes(MANIFEST),
        where=sb,
        help="a folder written by `lmtt index-neurons` (or set LMTT_NEURON_INDEX)",
    )
    return threshold, renormalize, final_norm, index
