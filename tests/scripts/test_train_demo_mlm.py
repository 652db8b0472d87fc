"""scripts/train_demo_mlm.py: bad input refused before any work; a run stopped and resumed
gives the same weights as one run straight through."""

import json

import pytest

from tests.scripts.loading import load_script

TINY = ["--layers", "1", "--d-model", "32", "--d-mlp", "64", "--heads", "2", "--n-ctx", "32"]
TINY += ["--vocab-size", "300", "--batch-size", "4", "--steps", "6", "--eval-every", "3"]


@pytest.fixture(scope="module")
def train():
    return load_script("train_demo_mlm")


def test_missing_text(train, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        train.main(["--ewt", str(tmp_path / "nope.conllu"), "--out", str(tmp_path / "m")])
    assert not (tmp_path / "m").exists()


def test_never_overwrites_a_model_without_force(train, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"precious")
    with pytest.raises(SystemExit, match="--force"):
        train.main(["--out", str(out)])
    assert (out / "model.safetensors").read_bytes() == b"precious"


def test_masking_follows_80_10_10(train):
    """15% of the ordinary tokens are predicted; of those ~80% become [MASK], ~10% another
    token, ~10% stay; special tokens are never chosen."""
    import torch

    class Tok:
        all_special_ids = [0, 1, 2, 3, 4]
        mask_token_id = 4

        def __len__(self):
            return 1000

    rows = torch.randint(5, 1000, (200, 100))
    rows[:, 0] = 2
    inputs, labels = train.mask_tokens(rows, Tok(), 0.15, torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert not chosen[:, 0].any() and abs(float(chosen.float().mean()) - 0.15 * 0.99) < 0.01
    assert torch.equal(labels[chosen], rows[chosen]) and torch.equal(inputs[~chosen], rows[~chosen])
    masked = float((inputs[chosen] == 4).float().mean())
    kept = float((inputs[chosen] == rows[chosen]).float().mean())
    assert abs(masked - 0.8) < 0.02 and abs(kept - 0.1) < 0.02


@pytest.mark.slow
def test_resumed_run_equals_a_straight_run(train, tmp_path):
    from transformers import BertForMaskedLM

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train.main([*TINY, "--out", str(straight)])
    train.main([*TINY, "--out", str(resumed), "--stop-after", "4"])
    assert {p.name for p in resumed.iterdir()} == {"checkpoint.pt"}  # nothing else yet
    train.main([*TINY, "--out", str(resumed)])
    assert not (resumed / "checkpoint.pt").exists()
    for name in ("model.safetensors", "tokenizer.json"):
        assert (straight / name).read_bytes() == (resumed / name).read_bytes(), name
    stats = json.loads((resumed / "training.json").read_text())
    assert [h["step"] for h in stats["history"]] == [3, 6]
    model = BertForMaskedLM.from_pretrained(resumed)  # plain transformers, upcast to float32
    assert model.dtype.is_floating_point and str(model.dtype) == "torch.float32"
    assert "validation" in (resumed / "README.md").read_text()
