"""A 3,000-token prompt in the app (a tiny model with a long position table): the graph draws
only the positions on the routes, causal scores step aside with a one-line reason, and the
attention block panel maps a window. scripts/check_long_prompt_app.py runs the same flow on a
GPT-2-small-shaped model (4,000 tokens) and reports time and memory."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lmtt.testing import make_tiny_model

APP = str(Path(__file__).resolve().parents[2] / "app.py")
N_TOKENS = 3000


@pytest.fixture(scope="module")
def long_case(tmp_path_factory, shared_data):
    from transformers import AutoTokenizer

    tokenizer_folder = shared_data / "gpt2-tokenizer"
    folder = make_tiny_model(tmp_path_factory.mktemp("long") / "m", "gpt2", n_layers=2,
                             n_ctx=4096, tokenizer_folder=tokenizer_folder)  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_folder))
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    prompt = tokenizer.decode(tokenizer(text[: N_TOKENS * 8])["input_ids"][:N_TOKENS])
    return folder, prompt


@pytest.mark.slow
def test_the_app_opens_a_long_prompt(long_case):
    folder, prompt = long_case
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params["model"] = str(folder)
    at.query_params["prompt"] = prompt
    at.run()
    assert not at.exception and not at.error
    assert any("proximity or read routes for long prompts" in w.value for w in at.warning)
    n = len(at.sidebar.selectbox(key="target").options)
    assert n >= N_TOKENS
    xaxis = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["xaxis"]
    assert 1 < len(xaxis["tickvals"]) < 100  # the positions on the routes, not all 3,000
    assert f" {n - 1} " in f" {xaxis['ticktext'][-1]}"  # labelled with their positions
    at.selectbox(key="selection").set_value(f"attn_out:1:{n - 1}")
    at.run()
    assert not at.exception and not at.error
    assert any("Attention block L1" in h.value for h in at.subheader)
    assert any("the maps show positions" in c.value for c in at.caption)
