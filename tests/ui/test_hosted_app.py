"""Hosted mode through streamlit.testing: refusals, caps, run limits and the model queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROMPT = "First Citizen:\nBefore we proceed any further, hear me speak."


@pytest.fixture()
def hosted(monkeypatch, tmp_path):
    monkeypatch.setenv("LMTT_MODE", "hosted")
    monkeypatch.setenv("LMTT_DATA_FOLDERS", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    return monkeypatch


def run(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def messages(at) -> list[str]:
    return [m.value for m in (*at.error, *at.warning)]


def test_a_model_from_the_url_is_refused_alike_whether_or_not_it_exists(hosted, gpt2_folder):
    shown = []
    for spec in (str(gpt2_folder), "/no/such/folder", "openai-community/gpt2"):
        at = run(model=spec, prompt=PROMPT)
        assert not at.exception
        refusals = [m for m in messages(at) if "This server offers only" in m]
        assert len(refusals) == 1, messages(at)
        shown.append(refusals[0])
        # the offered default model runs instead; no free-form field exists
        assert at.sidebar.selectbox(key="model_choice").value == "lmtt-demo-shakespeare"
        assert not [t for t in at.sidebar.text_input if t.key == "custom_model"]
        assert "custom model" not in " ".join(at.sidebar.selectbox(key="model_choice").options)
    assert len(set(shown)) == 1


def test_prompt_caps_in_characters_and_tokens(hosted):
    hosted.setenv("LMTT_MAX_PROMPT_CHARS", "40")
    at = run(prompt="x" * 41)
    assert any("41 characters; this server takes at most 40" in m for m in messages(at))
    hosted.setenv("LMTT_MAX_PROMPT_CHARS", "4000")
    hosted.setenv("LMTT_MAX_PROMPT_TOKENS", "5")
    at = run(prompt=PROMPT)
    assert any("tokens; this server takes at most 5" in m for m in messages(at))
    assert not at.get("plotly_chart")  # nothing was computed


def test_runs_per_visitor_per_minute(hosted):
    hosted.setenv("LMTT_RUNS_PER_MINUTE", "2")
    at = run(prompt="One prompt")
    assert not messages(at)
    for text in ("A second prompt", "A third prompt"):
        at.sidebar.text_area(key="prompt").set_value(text).run()
    assert any("runs in the last minute" in m and "wait" in m for m in messages(at))
    at.sidebar.slider(key="threshold").set_value(0.1).run()  # no new run: still served
    at.sidebar.text_area(key="prompt").set_value("One prompt").run()  # counted: cached


def test_index_paths_only_from_the_offered_list(hosted, tmp_path, gpt2_folder):
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    for index in (str(secret), str(tmp_path / "missing")):
        at = run(prompt=PROMPT, index=index)
        refusals = [m for m in messages(at) if "only from the ones it offers" in m]
        assert len(refusals) == 1
        assert at.sidebar.selectbox(key="neuron_index").value == ""
        assert not [t for t in at.sidebar.text_input if t.key == "neuron_index"]


def test_a_queued_run_says_how_long_it_waited(hosted):
    from lmtt.ui import cache

    at = run(prompt=PROMPT)  # warm: the model is loaded
    gate = cache._gate(("lmtt-demo-shakespeare", "auto", "float32"))
    held = threading.Event()

    def hold():
        with gate.turn():
            held.set()
            time.sleep(1.5)

    worker = threading.Thread(target=hold)
    worker.start()
    held.wait(5)
    at.sidebar.text_area(key="prompt").set_value("A prompt nobody asked for yet").run()
    worker.join()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Waited 1.") and "(1 ahead)" in c for c in captions), captions


def test_masked_lm_tab_falls_back_only_to_an_offered_masked_lm(hosted):
    hosted.setenv("LMTT_MODELS", "lmtt-demo-shakespeare")
    at = run(prompt=PROMPT, tab="Masked LM")
    assert any("no masked-LM head" in i.value and "offers only" in i.value for i in at.info)
    assert not at.exception
    hosted.setenv("LMTT_MODELS", "lmtt-demo-shakespeare,lmtt-demo-mlm")
    at = run(prompt=PROMPT, tab="Masked LM")
    assert any("[MASK] at position" in m.value for m in at.markdown)
    hosted.setenv("LMTT_MAX_PROMPT_CHARS", "20")  # the tab's own sentence is capped too
    at = run(prompt="short", tab="Masked LM")
    assert at.text_input(key="mask_prompt").max_chars == 20
