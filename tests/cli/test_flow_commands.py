from lmtt.cli import main


def test_trace_command_prints_top_tokens_and_lens(gpt2_folder, capsys):
    assert main(["trace", "--model", str(gpt2_folder), "--device", "cpu", "The cat sat"]) == 0
    out = capsys.readouterr().out
    assert "Top 10 next tokens" in out and "Logit lens" in out
    assert "layer 2" in out and "embed" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_trace_command_reports_errors_cleanly(capsys):
    assert main(["trace", "--model", "no-such-model", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmtt: error:") and "Traceback" not in err


def test_trace_command_empty_prompt(gpt2_folder, capsys):
    assert main(["trace", "--model", str(gpt2_folder), ""]) == 2
    assert "empty" in capsys.readouterr().err


def test_routes_command_prints_edges_and_writes_json(gpt2_folder, tmp_path, capsys):
    from lmtt.flow.graph import RouteGraph

    out = tmp_path / "graph.json"
    argv = ["routes", "--model", str(gpt2_folder), "--threshold", "0.05", "--out", str(out)]
    assert main([*argv, "When Mary and John went to the store"]) == 0
    text = capsys.readouterr().out
    assert "Routes at threshold 0.05" in text and "attention" in text and "predicts" in text
    graph = RouteGraph.from_json(out.read_text())
    assert graph.threshold == 0.05 and graph.edges


def test_routes_command_bad_inputs(gpt2_folder, capsys):
    base = ["routes", "--model", str(gpt2_folder)]
    assert main([*base, "--target", "50", "The cat"]) == 2
    assert "Target position 50 is out of range" in capsys.readouterr().err
    assert main([*base, "--threshold", "0.9999", "The cat"]) == 2
    assert "Use a threshold below" in capsys.readouterr().err


def test_models_command_lists_the_catalog(capsys):
    from lmtt.models.catalog import load_model_catalog

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    catalog = load_model_catalog()
    for name in catalog.names():
        assert name in out
    assert f"{catalog.default} (default)" in out
    assert "offline (folder)" in out and "needs internet once" in out


def test_mask_refuses_a_model_without_an_mlm_head_before_loading_it(gpt2_folder, monkeypatch,
                                                                    capsys):  # fmt: skip
    from lmtt.models import loading

    def no_boot(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(loading, "_boot", no_boot)
    assert main(["mask", "--model", str(gpt2_folder), "a [MASK] b"]) == 2
    err = capsys.readouterr().err
    assert "has no masked-LM head" in err and "weights were loaded" not in err
