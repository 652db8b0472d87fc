"""scripts/train_demo_model.py refuses bad input before doing any work."""

import json

import pytest

from tests.scripts.loading import load_script


@pytest.fixture(scope="module")
def train():
    return load_script("train_demo_model")


def test_missing_corpus(train, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        train.main(["--corpus", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "m")])


def test_empty_corpus(train, tmp_path):
    corpus = tmp_path / "empty.txt"
    corpus.write_text("  \n\n")
    with pytest.raises(SystemExit, match="empty"):
        train.main(["--corpus", str(corpus), "--out", str(tmp_path / "m")])


def test_never_overwrites_without_force(train, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("To be, or not to be: that is the question.\n" * 50)
    out = tmp_path / "m"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"precious")
    with pytest.raises(SystemExit, match="--force"):
        train.main(["--corpus", str(corpus), "--out", str(out)])
    assert (out / "model.safetensors").read_bytes() == b"precious"


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_folder(train, tmp_path, shared_data):
    from lmtt.models import load_model
    from lmtt.models.trace import run_trace

    out = tmp_path / "m"
    train.main(
        [
            "--out",
            str(out),
            "--steps",
            "3",
            "--eval-every",
            "3",
            "--layers",
            "1",
            "--d-model",
            "32",
            "--heads",
            "2",
            "--n-ctx",
            "32",
            "--vocab-size",
            "300",
        ]
    )
    for name in ("config.json", "model.safetensors", "tokenizer.json", "README.md"):
        assert (out / name).is_file()
    assert "validation loss" in (out / "README.md").read_text()
    assert json.loads((out / "config.json").read_text())["n_ctx"] == 32
    model = load_model(str(out), device="cpu")
    assert model.dims.n_ctx == 32 and run_trace(model, "ROMEO:").n_tokens > 1
