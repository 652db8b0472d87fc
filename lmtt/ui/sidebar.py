"""Sidebar: model, prompt, threshold and display settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import yaml

from lmtt.config import config_dir, load_model_catalog

CUSTOM = "custom model name or local folder…"


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


def example_prompts() -> list[str]:
    path = Path(config_dir()) / "prompts.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["prompts"])


def _init_from_url() -> None:
    """Seed widget state from the URL once per session (shareable links)."""
    if st.session_state.get("_url_loaded"):
        return
    st.session_state["_url_loaded"] = True
    q = st.query_params
    catalog = load_model_catalog()
    model = q.get("model", catalog.default)
    if model in catalog.names():
        st.session_state["model_choice"] = model
    else:
        st.session_state["model_choice"] = CUSTOM
        st.session_state["custom_model"] = model
    st.session_state["prompt"] = q.get("prompt", example_prompts()[0])
    try:
        st.session_state["threshold"] = min(0.5, max(0.0, float(q.get("threshold", 0.04))))
    except ValueError:
        st.session_state["threshold"] = 0.04
    if "target" in q and q["target"].lstrip("-").isdigit():
        st.session_state["target"] = int(q["target"])
    st.session_state["neuron_index"] = q.get("index", os.environ.get("LMTT_NEURON_INDEX", ""))
    if "sel" in q:
        st.session_state["selection"] = q["sel"]


def _use_example() -> None:
    st.session_state["prompt"] = st.session_state["example"]
    st.session_state.pop("target", None)


def _use_uploaded() -> None:
    st.session_state["prompt"] = st.session_state["uploaded_prompt"]
    st.session_state.pop("target", None)


def sidebar() -> Settings:
    _init_from_url()
    catalog = load_model_catalog()
    sb = st.sidebar
    sb.header("Model")
    choice = sb.selectbox(
        "model",
        [*catalog.names(), CUSTOM],
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

    sb.header("Prompt")
    sb.selectbox(
        "examples",
        example_prompts(),
        key="example",
        on_change=_use_example,
        format_func=lambda p: p.replace("\n", " ⏎ ")[:60],
    )
    upload = sb.file_uploader("prompts file (one per line)", type=["txt"])
    if upload is not None:
        lines = [ln for ln in upload.getvalue().decode("utf-8", "replace").splitlines() if ln]
        if lines:
            sb.selectbox(
                "uploaded prompts",
                lines,
                key="uploaded_prompt",
                on_change=_use_uploaded,
                format_func=lambda p: p[:60],
            )
    prompt = sb.text_area("prompt", key="prompt", height=150)

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
    index = sb.text_input(
        "index folder",
        key="neuron_index",
        help="a folder written by `lmtt index-neurons` (or set LMTT_NEURON_INDEX)",
    ).strip()
    return Settings(model, device, dtype, prompt, float(threshold), renormalize, final_norm, index)
