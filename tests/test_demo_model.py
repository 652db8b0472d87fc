"""End-to-end checks on the demo model shipped in lmtt/assets/demo-model."""

import pytest
import torch

from lmtt.flow.graph import routes
from lmtt.models import load_model
from lmtt.models.catalog import load_model_catalog
from lmtt.models.trace import run_trace

LINE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak,"


@pytest.fixture(scope="module")
def demo():
    catalog = load_model_catalog()
    entry = catalog.get(catalog.default)
    assert entry is not None and "demo" in entry.name and not entry.needs_internet
    return load_model(catalog.default, device="cpu")


def test_demo_model_is_the_default_and_loads(demo):
    import json
    from pathlib import Path

    config = json.loads((Path(demo.source) / "config.json").read_text())
    assert config["n_ctx"] == config["n_positions"] == 256
    d = demo.dims
    assert (d.family, d.n_layers, d.n_heads, d.d_model, d.n_ctx) == ("GPT-2", 4, 8, 256, 256)


def test_demo_model_predicts_shakespeare(demo, shared_data):
    """Lower loss than the unigram baseline on held-out text (the last 5% of the corpus)."""
    text = (shared_data / "tinyshakespeare" / "input.txt").read_text()
    held_out = text[int(len(text) * 0.95) :][:2000]
    ids = demo.encode(held_out)[: demo.dims.n_ctx]
    logits = run_trace(demo, ids, capture={"resid_pre"}).logits
    loss = torch.nn.functional.cross_entropy(logits[:-1], ids[1:])
    train_ids = torch.tensor(demo.tokenizer(text[: int(len(text) * 0.95)])["input_ids"])
    counts = torch.bincount(train_ids, minlength=demo.dims.d_vocab).double() + 1
    unigram = -(counts / counts.sum())[ids[1:]].log().mean()
    assert float(loss) < float(unigram) - 1.0


def test_routes_on_a_shakespeare_line(demo):
    trace = run_trace(demo, LINE)
    graph = routes(trace, threshold=0.04)
    assert graph.edges and graph.target_positions == (trace.n_tokens - 1,)
    assert any(e.kind == "attention" and e.source.pos < trace.n_tokens - 1 for e in graph.edges)


def test_demo_model_has_an_induction_head(demo):
    gen = torch.Generator().manual_seed(7)
    n = 40
    random = torch.randint(1, demo.dims.d_vocab, (n,), generator=gen)
    trace = run_trace(demo, torch.cat([torch.tensor([0]), random, random]), capture={"pattern"})
    second = torch.arange(1 + n, 1 + 2 * n)
    best = max(
        float(trace.pattern(layer)[:, second, second - n + 1].mean(-1).max())
        for layer in range(demo.dims.n_layers)
    )
    assert best > 0.3
