"""``lmtt verify``, ``lmtt patch`` and ``lmtt routes --score`` on the demo model."""

import csv
import json
from pathlib import Path

import pytest

from lmtt.cli import main
from lmtt.flow.graph import RouteGraph

DEMO = str(Path(__file__).resolve().parents[2] / "lmtt" / "assets" / "demo-model")
PROMPT = "First Citizen: Before we proceed any further, hear me"


@pytest.mark.parametrize("score", ["proximity", "knockout", "verified"])
def test_verify_writes_report_csv_and_plots(tmp_path, capsys, score):
    out = tmp_path / "v"
    argv = ["verify", "--model", DEMO, PROMPT, "--score", score, "--out", str(out),
            "--curve", "0.02,0.05,0.1"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "completeness" in text and f"|{score}| vs |effect|" in text
    report = json.loads((out / "verify.json").read_text())
    assert report["score"] == score and report["curve"]["thresholds"] == [0.02, 0.05, 0.1]
    rows = list(csv.DictReader((out / "edges.csv").open()))
    assert len(rows) == len(report["edges"]) > 0
    if score == "knockout":  # every kept edge has a measured effect (at least the threshold)
        assert all(r["measured"] == "True" for r in rows)
        assert all(abs(float(r["weight"])) >= 0.04 for r in rows)
    for name in ("faithfulness.png", "effects.png", "faithfulness.svg", "effects.svg"):
        assert (out / name).stat().st_size > 1000


def test_patch_prints_shares_and_writes_heatmap(tmp_path, capsys):
    out = tmp_path / "p"
    clean, counterfactual = tmp_path / "clean.txt", tmp_path / "cf.txt"
    clean.write_text("ROMEO: But soft", encoding="utf-8")
    counterfactual.write_text("JULIET: But soft", encoding="utf-8")
    argv = ["patch", "--model", DEMO, "--prompt-file", str(clean), "--counterfactual-file",
            str(counterfactual), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "share of the change" in printed
    assert json.loads((out / "patch.json").read_text())["what"] == "resid"
    assert (out / "patch.png").stat().st_size > 1000


def test_routes_with_a_signed_score_and_a_foil(tmp_path, capsys):
    out = tmp_path / "g.json"
    argv = ["routes", "--model", DEMO, PROMPT, "--score", "knockout", "--foil", " the",
            "--threshold", "0.05", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "knockout share of logit(" in capsys.readouterr().out
    graph = RouteGraph.from_json(out.read_text())
    assert graph.score == "knockout" and graph.edges


def test_routes_refuses_renormalize_with_a_signed_score(capsys):
    argv = ["routes", "--model", DEMO, PROMPT, "--score", "verified", "--renormalize", "0.1"]
    assert main(argv) == 2
    assert "--renormalize applies to proximity" in capsys.readouterr().err


def test_qk_explains_one_attention_edge(tmp_path, capsys):
    out = tmp_path / "qk"
    argv = ["qk", "--model", DEMO, PROMPT, "--layer", "1", "--head", "0", "--key", "1",
            "--vs", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "rather than 2" in text and "(query) ×" in text and "Summed by layer" in text
    report = json.loads((out / "qk.json").read_text())
    total = sum(sum(row) for row in report["terms"])
    assert total == pytest.approx(report["score"], rel=1e-4, abs=1e-4)
    assert (out / "qk.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "1", "--head", "0", "--key", "99"], "Key position 99 is out of range"),
        (["--layer", "1", "--head", "0", "--key", "5", "--query", "3"], "Key position 5"),
        (["--layer", "9", "--head", "0", "--key", "1"], "Layer 9 is out of range"),
        (["--layer", "1", "--head", "0", "--key", "1", "--vs", "50"], "Second key position"),
    ],
)
def test_qk_refuses_bad_positions_in_one_line(argv, message, capsys):
    assert main(["qk", "--model", DEMO, PROMPT, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_routes_with_key_and_query_edges(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["routes", "--model", DEMO, PROMPT, "--qk-edges", "--out", str(out)]) == 0
    assert "│ key " in capsys.readouterr().out
    graph = RouteGraph.from_json(out.read_text())
    assert {"key", "query"} <= {e.kind for e in graph.edges}


def test_heads_prints_the_catalogue_and_writes_its_files(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("ROMEO: But soft\n\nJULIET: O Romeo, Romeo\n", encoding="utf-8")
    out = tmp_path / "h"
    argv = ["heads", "--model", DEMO, "--prompts", str(prompts), "--random", "2", "--out",
            str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "previous_token" in printed and "L0H1" in printed  # the demo's previous-token head
    rows = json.loads((out / "heads.json").read_text())["heads"]
    assert len(rows) == 4 * 8 and {"induction", "entropy"} <= set(rows[0])
    assert (out / "heads.png").stat().st_size > 1000
    assert main(["heads", "--model", DEMO, "--prompts", str(tmp_path / "missing.txt")]) == 2


def test_batch_then_query_its_folder(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ROMEO: But soft"}\n{"prompt": "JULIET: O Romeo", '
                       '"target": ","}\n', encoding="utf-8")  # fmt: skip
    out = tmp_path / ("a-folder-name-long-enough-to-pass-100-columns-" * 2) / "b"
    argv = ["batch", "--model", DEMO, "--prompts", str(prompts), "--out", str(out), "--quiet"]
    assert main(argv) == 0
    hint = f"query it with `lmtt batch-query {out}`"
    assert any(hint in line for line in capsys.readouterr().out.splitlines())  # not wrapped
    assert main(["batch-query", str(out), "--limit", "3"]) == 0
    printed = capsys.readouterr().out
    assert "route_share" in printed and "mean_contribution" in printed
    sql = "SELECT prompt_id, target FROM prompts ORDER BY prompt_id"
    assert main(["batch-query", str(out), sql]) == 0
    assert "," in capsys.readouterr().out  # the second row's own target
    assert main(["batch-query", str(out), "SELECT nope"]) == 2
    assert main(["batch-query", str(tmp_path)]) == 2  # not a batch folder
    assert main(["batch", "--model", DEMO, "--prompts", str(tmp_path / "x.csv"), "--out",
                 str(tmp_path / "c")]) == 2  # fmt: skip


def test_diff_compares_two_prompts_routes(tmp_path, capsys):
    out = tmp_path / "d"
    argv = ["diff", "--model", DEMO, "ROMEO: But soft, what light", "--vs",
            "JULIET: But soft, what light", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Only in A" in printed and "Largest weight changes" in printed
    report = json.loads((out / "diff.json").read_text())
    assert report["a"]["tokens"][-1] == report["b"]["tokens"][-1]  # both end on ' light'
    assert (out / "diff.svg").read_text().startswith("<svg")
    assert main(["diff", "--model", DEMO, "ROMEO"]) == 2  # no B


def test_heads_with_a_batch_adds_route_importance(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("ROMEO: But soft\nJULIET: O Romeo, Romeo\n", encoding="utf-8")
    batch = tmp_path / "b"
    assert main(["batch", "--model", DEMO, "--prompts", str(prompts), "--out", str(batch),
                 "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    argv = ["heads", "--model", DEMO, "--prompts", str(prompts), "--random", "1", "--batch",
            str(batch), "--y", "route_share"]  # fmt: skip
    assert main(argv) == 0
    assert "route_share" in capsys.readouterr().out
    no_batch = ["heads", "--model", DEMO, "--prompts", str(prompts), "--y", "route_share"]
    assert main(no_batch) == 2  # a batch metric without --batch
    capsys.readouterr()
    assert main(["heads", "--prompts", str(prompts), "--random", "1", "--batch", str(batch)]) == 0
    other = ["heads", "--model", "gpt2", "--prompts", str(prompts), "--batch", str(batch)]
    assert main(other) == 2  # a batch of another model, refused before any model loads
    assert "is a batch of" in capsys.readouterr().err
