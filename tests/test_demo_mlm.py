"""End-to-end checks on the masked-LM demo model shipped in lmtt/assets/demo-mlm."""

import json
from pathlib import Path

import pytest
import torch

from lmtt.attention.masked_lm import masked_token_score, predict_masks
from lmtt.cli import main
from lmtt.models import load_model
from lmtt.models.catalog import load_model_catalog

ASSETS = Path(__file__).resolve().parents[1] / "lmtt" / "assets"
SENTENCE = "First Citizen: Before we [MASK] any further, hear me speak."


@pytest.fixture(scope="module")
def mlm():
    catalog = load_model_catalog()
    assert catalog.masked_lm == "lmtt-demo-mlm"
    entry = catalog.get(catalog.masked_lm)
    assert entry is not None and not entry.needs_internet
    return load_model(catalog.masked_lm, device="cpu")


def test_it_loads_with_plain_transformers_in_float32():
    from transformers import BertForMaskedLM

    folder = ASSETS / "demo-mlm"
    hf = BertForMaskedLM.from_pretrained(folder)
    assert next(hf.parameters()).dtype == torch.float32
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (4, 256)
    assert not (folder / "checkpoint.pt").exists()  # training finished; nothing half-done


def test_both_demo_folders_fit_the_budget():
    size = sum(f.stat().st_size for d in ("demo-model", "demo-mlm") for f in (ASSETS / d).iterdir())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MB"


def test_it_beats_the_unigram_baseline_on_held_out_text(mlm, shared_data):
    """The last 5% of Tiny Shakespeare (never trained on): lower masked-token loss than the
    unigram distribution of the training text by more than a nat."""
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    tok = mlm.tokenizer
    held_out = tok(text[int(len(text) * 0.95) :][:6000], add_special_tokens=False)["input_ids"]
    ids = torch.tensor(held_out)
    cls, sep = torch.tensor([tok.cls_token_id]), torch.tensor([tok.sep_token_id])
    windows = [torch.cat([cls, ids[s : s + 126], sep]) for s in range(0, len(ids) - 126, 126)]
    score = masked_token_score(mlm, windows)
    train = tok(text[: int(len(text) * 0.95)], add_special_tokens=False)["input_ids"]
    counts = torch.bincount(torch.tensor(train), minlength=len(tok)).double() + 1
    unigram = float(-(counts / counts.sum())[score.labels].log().mean())
    assert score.masked > 100
    assert score.loss < unigram - 1.0, (score.loss, unigram)


def test_lmtt_mask_gives_the_top_filler_of_plain_transformers(mlm, capsys):
    from transformers import BertForMaskedLM

    hf = BertForMaskedLM.from_pretrained(ASSETS / "demo-mlm").eval()
    enc = mlm.tokenizer(SENTENCE, return_tensors="pt")
    with torch.no_grad():
        logits = hf(**enc).logits[0]
    at = int((enc["input_ids"][0] == mlm.tokenizer.mask_token_id).nonzero())
    top = mlm.tokenizer.convert_ids_to_tokens(int(logits[at].argmax()))
    (pred,) = predict_masks(mlm, SENTENCE, k=5)
    assert pred.fillers[0][0] == top
    assert main(["mask", SENTENCE]) == 0  # the default model of lmtt mask
    assert top in capsys.readouterr().out
