"""The bad-input sweep: every command against empty, whitespace and control-character text,
invalid UTF-8, numbers out of range or not numbers at all, missing paths, a file where a folder
belongs and the reverse, unwritable outputs, damaged index files and a broken models.yaml.

Each refusal is one line on stderr that says what to do, exit code 2, no traceback, and no
output left behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lmtt.cli import main
from lmtt.testing import make_tiny_bert

READ_ONLY = "/sys/lmtt-sweep-output"  # not writable, even for root


@pytest.fixture(scope="module")
def world(tmp_path_factory, gpt2_folder):
    """Everything the commands read: models, a corpus, a neuron index, a context index, and
    damaged copies of the indexes."""
    root = tmp_path_factory.mktemp("sweep")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"Line {i}: the cat sat on the mat." for i in range(12)) + "\n")
    w = {"root": root, "gpt2": str(gpt2_folder), "corpus": str(corpus)}
    w["bert"] = str(make_tiny_bert(root / "bert"))
    base = ["--model", w["gpt2"], "--corpus", w["corpus"], "--quiet"]
    assert main(["index-neurons", *base, "--out", str(root / "neurons"), "--window", "16"]) == 0
    assert (
        main(["index-contexts", *base, "--out", str(root / "contexts"), "--layers", "0", "1"]) == 0
    )
    w["neurons"], w["contexts"] = str(root / "neurons"), str(root / "contexts")
    for name, damage in {
        "neurons-truncated": ("examples.parquet", lambda b: b[: len(b) // 2]),
        "neurons-manifest": ("lmtt-index.json", lambda b: b"{not json"),
        "contexts-f16": ("layer-1.f16", lambda b: b[:-10]),
        "contexts-tokens": ("tokens.parquet", lambda b: b[:100]),
        "contexts-manifest": ("lmtt-contexts.json", lambda b: b"[1, 2"),
    }.items():
        src = root / name.split("-")[0]
        shutil.copytree(src, root / name)
        path = root / name / damage[0]
        path.write_bytes(damage[1](path.read_bytes()))
        w[name] = str(root / name)
    (root / "a-file").write_text("x")
    (root / "not-utf8.txt").write_bytes(b"caf\xe9 \xff")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.md").write_text("mine")
    (root / "empty-folder").mkdir()
    return w


def cases(w: dict) -> list[tuple[str, list[str]]]:
    """(what it checks, argv) of every bad input: each must be refused."""
    g, c, r = ["--model", w["gpt2"]], w["corpus"], w["root"]
    f, out, rs = str(r / "a-file"), str(r / "new-out"), str(r)
    text = [
        ("empty prompt", ["trace", *g, ""]),
        ("whitespace prompt", ["routes", *g, "   \n\t "]),
        ("no prompt", ["trace", *g]),
        ("prompt and file", ["trace", *g, "x", "--prompt-file", f]),
        ("prompt file missing", ["routes", *g, "--prompt-file", str(r / "none.txt")]),
        ("prompt file is a folder", ["trace", *g, "--prompt-file", rs]),
        ("prompt file not UTF-8", ["trace", *g, "--prompt-file", str(r / "not-utf8.txt")]),
        ("control characters, no mask", ["mask", "--model", w["bert"], "\x00\x07\x1b[0m"]),
        ("over-long prompt", ["trace", *g, "word " * 500]),
    ]
    numbers = [
        ("trace --top-k -1", ["trace", *g, "hi", "--top-k", "-1"]),
        ("trace --top-k 0", ["trace", *g, "hi", "--top-k", "0"]),
        ("trace --top-k text", ["trace", *g, "hi", "--top-k", "ten"]),
        ("trace --lens-k nan", ["trace", *g, "hi", "--lens-k", "nan"]),
        ("trace --position 99", ["trace", *g, "hi", "--position", "99"]),
        ("routes --threshold nan", ["routes", *g, "hi", "--threshold", "nan"]),
        ("routes --threshold 1", ["routes", *g, "hi", "--threshold", "1"]),
        ("routes --threshold -0.1", ["routes", *g, "hi", "--threshold", "-0.1"]),
        ("routes --renormalize inf", ["routes", *g, "hi", "--renormalize", "inf"]),
        ("routes --memory-mb nan", ["routes", *g, "hi", "--memory-mb", "nan"]),
        ("routes --memory-mb 0", ["routes", *g, "hi", "--memory-mb", "0"]),
        ("routes --memory-mb -5", ["routes", *g, "hi", "--memory-mb", "-5"]),
        ("routes --target 99", ["routes", *g, "hi", "--target", "99"]),
        ("mask --top-k -1", ["mask", "--model", w["bert"], "a [MASK] .", "--top-k", "-1"]),
        ("attention --layer 99", ["attention", *g, "hi", "--layer", "99", "--out", out]),
        ("attention --layer -1", ["attention", *g, "hi", "--layer", "-1", "--out", out]),
        ("attention --head 99", ["attention", *g, "hi", "--head", "99", "--out", out]),
        ("attention --query 99", ["attention", *g, "hi", "--query", "99", "--out", out]),
        ("qk-map --tokens 0", ["qk-map", *g, "--corpus", c, "--layer", "0", "--head", "0",
                               "--tokens", "0", "--out", out, "--quiet"]),
        ("qk-map --layer 99", ["qk-map", *g, "--corpus", c, "--layer", "99", "--head", "0",
                               "--out", out, "--quiet"]),
    ]  # fmt: skip
    cf = ["patch", *g, "the cat", "--counterfactual"]
    numbers += [
        ("verify --threshold 1", ["verify", *g, "hi", "--threshold", "1"]),
        ("verify --curve one value", ["verify", *g, "hi", "--curve", "0.1"]),
        ("verify --curve text", ["verify", *g, "hi", "--curve", "a,b"]),
        ("verify --min-share 2", ["verify", *g, "hi", "--min-share", "2"]),
        ("verify --target 99", ["verify", *g, "hi", "--target", "99"]),
        ("verify --token of many tokens", ["verify", *g, "hi", "--token", "the cat sat"]),
        ("verify --token id 10^9", ["verify", *g, "hi", "--token", "1000000000"]),
        ("verify --foil is the token", ["verify", *g, "hi", "--token", "5", "--foil", "5"]),
        ("verify contrast without foil", ["verify", *g, "hi", "--metric", "contrast"]),
        ("patch lengths differ", [*cf, "a much longer counterfactual prompt"]),
        ("patch --align text", [*cf, "the dog", "--align", "x,y"]),
        ("patch --align wrong count", [*cf, "the dog", "--align", "0"]),
        ("patch --align out of range", [*cf, "the dog", "--align", "0,99"]),
        ("patch --align negative", [*cf, "the dog", "--align", "0,-1"]),
        ("patch empty counterfactual", [*cf, ""]),
        ("patch no counterfactual", ["patch", *g, "the cat"]),
        ("patch both counterfactuals", [*cf, "the dog", "--counterfactual-file", f]),
        ("patch --counterfactual-file missing", ["patch", *g, "the cat",
                                                 "--counterfactual-file", f + ".missing"]),
        ("verify --out is a file", ["verify", *g, "hi", "--out", f]),
        ("qk --layer 99", ["qk", *g, "hi there", "--layer", "99", "--head", "0", "--key", "0"]),
        ("qk --head 99", ["qk", *g, "hi there", "--layer", "0", "--head", "99", "--key", "0"]),
        ("qk --key 99", ["qk", *g, "hi there", "--layer", "0", "--head", "0", "--key", "99"]),
        ("qk --key -1", ["qk", *g, "hi there", "--layer", "0", "--head", "0", "--key", "-1"]),
        ("qk --vs 99", ["qk", *g, "hi there", "--layer", "0", "--head", "0", "--key", "0",
                        "--vs", "99"]),
        ("qk --top-k 0", ["qk", *g, "hi there", "--layer", "0", "--head", "0", "--key", "0",
                          "--top-k", "0"]),
        ("qk --out is a file", ["qk", *g, "hi there", "--layer", "0", "--head", "0", "--key",
                                "0", "--out", f]),
        ("patch --out is a file", [*cf, "the dog", "--out", f]),
    ]  # fmt: skip
    index = ["index-neurons", *g, "--corpus", c, "--quiet"]
    numbers += [
        (f"index-neurons {flag} {value}", [*index, flag, value, "--out", out])
        for flag, value in [
            ("--top-k", "100000000"), ("--top-k", "0"), ("--window", "0"), ("--window", "1"),
            ("--window", "9999"), ("--max-tokens", "-1"), ("--max-tokens", "0"),
            ("--batch-size", "0"), ("--context", "-1"), ("--chunk-windows", "0"),
            ("--shard", "3/2"), ("--shard", "x"), ("--ray", "-1"), ("--top-k", "1e3"),
        ]
    ]  # fmt: skip
    ctx = ["index-contexts", *g, "--corpus", c, "--quiet"]
    numbers += [
        ("index-contexts --max-tokens -1", [*ctx, "--max-tokens", "-1", "--out", out]),
        ("index-contexts --layers 99", [*ctx, "--layers", "99", "--out", out]),
        ("index-contexts --layers -1", [*ctx, "--layers", "-1", "--out", out]),
        ("contexts --layer 99", ["contexts", "--index", w["contexts"], "hi", "--position", "0",
                                 "--layer", "99"]),
        ("contexts --k -1", ["contexts", "--index", w["contexts"], "hi", "--position", "0",
                             "--layer", "1", "--k", "-1"]),
        ("contexts --position 99", ["contexts", "--index", w["contexts"], "hi", "--position",
                                    "99", "--layer", "1"]),
        ("neuron --k -1 --token", ["neuron", "--index", w["neurons"], "--token", "the", "--k",
                                   "-1"]),
        ("neuron out of range", ["neuron", "--index", w["neurons"], "0", "99999"]),
        ("neuron --context -1", ["neuron", "--index", w["neurons"], "0", "1", "--context", "-1"]),
    ]  # fmt: skip
    paths = [
        ("corpus missing", [*index, "--corpus", str(r / "none.txt"), "--out", out]),
        ("corpus folder without text", [*index, "--corpus", str(r / "empty-folder"),
                                        "--out", out]),
        ("corpus is an index folder", ["qk-map", *g, "--corpus", w["contexts"], "--layer", "0",
                                       "--head", "0", "--out", out, "--quiet"]),
        ("--out is a file", [*index, "--out", f]),
        ("--out below a file", [*ctx, "--out", str(r / "a-file" / "x")]),
        ("--out is a foreign folder", [*index, "--out", str(r / "foreign")]),
        ("--out not empty", [*ctx, "--out", str(r / "foreign")]),
        ("--out not writable", [*index, "--out", READ_ONLY]),
        ("routes --out is a folder", ["routes", *g, "hi", "--out", rs]),
        ("routes --out not writable", ["routes", *g, "hi", "--out", READ_ONLY + "/g.json"]),
        ("attention --out is a file", ["attention", *g, "hi", "--out", f]),
        ("mask --diagrams is a file", ["mask", "--model", w["bert"], "a [MASK] .",
                                       "--diagrams", f]),
        ("contexts --out is a file", ["contexts", "--index", w["contexts"], "hi", "--position",
                                      "0", "--layer", "1", "--out", f]),
        ("model folder missing", ["trace", "--model", str(r / "no-model"), "hi"]),
        ("model is a file", ["trace", "--model", f, "hi"]),
        ("model folder without config", ["trace", "--model", str(r / "empty-folder"), "hi"]),
        ("index missing", ["neuron", "--index", str(r / "none"), "0", "0"]),
        ("index is a file", ["contexts", "--index", f, "hi", "--position", "0", "--layer", "0"]),
        ("merge sources missing", ["merge-index", "--out", out, str(r / "none")]),
        ("batch prompts missing", ["batch", *g, "--prompts", str(r / "none.txt"), "--out", out]),
        ("batch prompts of a bad kind", ["batch", *g, "--prompts", f, "--out", out]),
        ("batch --shard out of range", ["batch", *g, "--prompts", str(r / "not-utf8.txt"),
                                        "--out", out, "--shard", "x"]),
        ("batch-query not a batch", ["batch-query", rs]),
        ("heads --prompts missing", ["heads", *g, "--prompts", str(r / "none.txt")]),
        ("heads --length too long", ["heads", *g, "--length", "100000"]),
        ("heads batch axis without --batch", ["heads", *g, "--y", "route_share"]),
        ("diff without B", ["diff", *g, "hi"]),
        ("diff B and B file", ["diff", *g, "hi", "--vs", "ho", "--vs-file", f]),
        ("diff B file missing", ["diff", *g, "hi", "--vs-file", str(r / "none.txt")]),
    ]  # fmt: skip
    damaged = [
        ("truncated examples.parquet", ["neuron", "--index", w["neurons-truncated"], "0", "1"]),
        ("bad neuron manifest", ["neuron", "--index", w["neurons-manifest"], "0", "1"]),
        ("truncated .f16", ["contexts", "--index", w["contexts-f16"], "hi", "--position", "0",
                            "--layer", "1"]),
        ("truncated tokens.parquet", ["contexts", "--index", w["contexts-tokens"], "hi",
                                      "--position", "0", "--layer", "1"]),
        ("bad context manifest", ["contexts", "--index", w["contexts-manifest"], "hi",
                                  "--position", "0", "--layer", "1"]),
    ]  # fmt: skip
    return text + numbers + paths + damaged


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


def test_every_bad_input_is_refused_in_one_line(world, capsys):
    root = world["root"]
    before = _snapshot(root)
    failures = []
    for what, argv in cases(world):
        code = main(argv)
        err = capsys.readouterr().err.strip()
        lines = err.splitlines()
        if code != 2 or len(lines) != 1 or not lines[0].startswith("lmtt") or "Traceback" in err:
            failures.append(f"{what}: exit {code}, stderr {err[-300:]!r}")
        if _snapshot(root) != before:
            failures.append(f"{what}: left output behind")
            before = _snapshot(root)
    assert not failures, "\n".join(failures)


def test_the_sweep_covers_every_command(world):
    from lmtt.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)
    swept = {argv[0] for _, argv in cases(world)} | {"models"}  # models: the catalog test below
    assert commands == swept


def test_a_broken_models_yaml_is_one_line(tmp_path, monkeypatch, capsys, gpt2_folder):
    from lmtt.config import config_dir

    shutil.copy(config_dir() / "prompts.yaml", tmp_path / "prompts.yaml")
    monkeypatch.setenv("LMTT_CONFIG_DIR", str(tmp_path))
    for broken in ("models: [name: {", "models: 3", "models:\n  - source: x\n", "- a\n- b\n"):
        (tmp_path / "models.yaml").write_text(broken)
        for argv in (["models"], ["trace", "hi"]):
            assert main(argv) == 2, broken
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "models.yaml is not a valid model catalog" in err
    assert main(["trace", "--model", str(gpt2_folder), "hi"]) == 0  # a folder needs no catalog


@pytest.mark.parametrize(
    "prompt", ["\x00\x07 bell \x1b[0m", "caf\udcc3 \udcff bytes", "tab\tand\nnewline"]
)
def test_odd_but_valid_text_is_traced(gpt2_folder, prompt, capsys):
    """Control characters and undecodable bytes (from argv) are text, traced and printed."""
    assert main(["trace", "--model", str(gpt2_folder), prompt, "--top-k", "2"]) == 0
    assert "Top 2 next tokens" in capsys.readouterr().out
