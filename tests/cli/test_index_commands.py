"""The neuron index commands: index-neurons, merge-index, neuron (and the Ray runner)."""

from __future__ import annotations

import importlib.util

import pyarrow.parquet as pq
import pytest

from lmtt.cli import main

TEXT = "\n\n".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog, again and again."
    for i in range(12)
)


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT + "\n")
    return path


def index_args(folder, corpus, out, *extra):
    return [
        "index-neurons", "--model", str(folder), "--device", "cpu", "--corpus", str(corpus),
        "--out", str(out), "--top-k", "5", "--window", "24", "--batch-size", "2",
        "--chunk-windows", "2", "--quiet", *extra,
    ]  # fmt: skip


def test_index_then_neuron_commands(gpt2_folder, corpus, tmp_path, capsys):
    out = tmp_path / "index"
    assert main(index_args(gpt2_folder, corpus, out)) == 0
    text = capsys.readouterr().out
    assert "tokens/s" in text and "index ready" in text and " MB)" in text
    assert main(["neuron", "--index", str(out), "1", "2", "--k", "3", "--context", "4"]) == 0
    text = capsys.readouterr().out
    assert "L1 N2" in text and "active on" in text
    assert text.count("»") == 1 + 3 and text.count("«") == 1 + 3  # the title shows one
    assert main(["neuron", "--index", str(out), "--token", "the"]) == 0
    assert "Neurons whose top examples" in capsys.readouterr().out
    assert main(["neuron", "--index", str(out), "1", "99999"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["neuron", "--index", str(out)]) == 2
    assert "Give a layer and a neuron" in capsys.readouterr().err


def test_sharded_commands_and_merge(gpt2_folder, corpus, tmp_path, capsys):
    single, shards = tmp_path / "single", [tmp_path / "s0", tmp_path / "s1"]
    assert main(index_args(gpt2_folder, corpus, single)) == 0
    for i, folder in enumerate(shards):
        assert main(index_args(gpt2_folder, corpus, folder, "--shard", f"{i}/2")) == 0
        assert f"shard {i}/2 done" in capsys.readouterr().out
    assert main(["merge-index", "--out", str(tmp_path / "merged"), *map(str, shards)]) == 0
    for name in ("examples.parquet", "neurons.parquet"):
        assert pq.read_table(tmp_path / "merged" / name).equals(pq.read_table(single / name))
    assert main(index_args(gpt2_folder, corpus, tmp_path / "x", "--shard", "2/2")) == 2
    # a usage error: one line, exit code 2
    assert main(index_args(gpt2_folder, corpus, tmp_path / "x", "--shard", "two")) == 2
    assert "expected i/n such as 0/4" in capsys.readouterr().err


def test_bad_corpus_inputs(gpt2_folder, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(index_args(gpt2_folder, empty, tmp_path / "o1")) == 2
    assert "no text to index" in capsys.readouterr().err
    broken = tmp_path / "broken.conllu"
    broken.write_text("# sent_id = a\n1\tHello\thello\tINTJ\n\n")
    assert main(index_args(gpt2_folder, broken, tmp_path / "o2")) == 2
    err = capsys.readouterr().err
    assert "broken.conllu:2" in err and "10 tab-separated columns" in err


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the ray extra is not installed"
)
def test_ray_runner_equals_single_run(gpt2_folder, corpus, tmp_path):
    from lmtt.index.neuron_index import IndexSettings, index_neurons
    from lmtt.index.ray_runner import run_on_ray
    from lmtt.models import load_model

    model = load_model(str(gpt2_folder), device="cpu")
    d = model.dims
    s = IndexSettings(
        str(gpt2_folder), str(corpus), d.n_layers, d.d_mlp, top_k=5, window=24, chunk_windows=2
    )
    index_neurons(model, corpus, tmp_path / "single", s, progress=False)
    merged = run_on_ray(str(gpt2_folder), str(corpus), tmp_path / "ray", s, n_shards=3)
    for name in ("examples.parquet", "neurons.parquet"):
        assert pq.read_table(merged / name).equals(pq.read_table(tmp_path / "single" / name))
