"""The head catalogue (lmtt.attention.heads): hand-worked scores, TransformerLens's own
detector as the reference, and the known heads of the hand-built induction circuit."""

import pytest
import torch

from lmtt.attention.heads import METRICS, HeadCatalogueError, _scores, head_catalogue
from lmtt.attention.views import capture_attention
from lmtt.models.head_patterns import detector_score, reference_pattern
from lmtt.testing.circuits import INDUCTION_PROMPT

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_scores_by_hand():
    # head 0 attends to the previous token (the first query to itself), head 1 uniformly
    prev = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    uniform = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    s = _scores(torch.stack([prev, uniform]), torch.tensor([7, 8, 9]))
    torch.testing.assert_close(s["previous_token"], torch.tensor([2 / 3, (0.5 + 1 / 3) / 3]))
    torch.testing.assert_close(s["first_token"], torch.tensor([0.5, (0.5 + 1 / 3) / 2]))
    bits = (1 + torch.log2(torch.tensor(3.0))) / 2
    torch.testing.assert_close(s["entropy"], torch.stack([torch.tensor(0.0), bits]))
    assert s["duplicate_token"].eq(0).all()  # no token repeats


def test_vectorised_scores_equal_transformer_lens_detector(gpt2_model):
    trace = capture_attention(gpt2_model, torch.tensor([5, 9, 11, 5, 9, 11, 5, 9]))
    for layer in range(trace.n_layers):
        pattern = trace.pattern(layer)
        mine = _scores(pattern, trace.tokens)
        for kind in ("previous_token", "duplicate_token", "induction"):
            ref = reference_pattern(kind, trace.tokens)
            theirs = [detector_score(pattern[h], ref) for h in range(trace.n_heads)]
            torch.testing.assert_close(mine[kind], torch.tensor(theirs), atol=1e-6, rtol=1e-5)


def test_the_circuit_heads_are_found(circuit):
    model = circuit[0]
    cat = head_catalogue(model, ["A B C D"], sequences=[INDUCTION_PROMPT])
    assert cat.top("previous_token", 1)[0][:2] == (0, 0)  # L0H0 attends to the previous token
    assert cat.top("induction", 1)[0][:2] == (1, 0)  # L1H0 looks after the earlier copy
    assert cat.shape == (2, 4) and len(cat.rows()) == 8
    assert set(cat.rows()[0]) == {"layer", "head", "name", *METRICS}


def test_catalogue_of_a_tiny_model_and_bad_input(gpt2_model):
    cat = head_catalogue(gpt2_model, [PROMPT, "  "], n_random=2, length=8)
    assert cat.prompts == (PROMPT,) and cat.random_sequences.shape == (2, 16)
    assert torch.equal(cat.random_sequences[:, :8], cat.random_sequences[:, 8:])
    for m in METRICS:
        assert cat.metrics[m].shape == cat.best_prompt[m].shape == (3, 4)
    assert (cat.metrics["entropy"] >= 0).all() and (cat.metrics["first_token"] <= 1).all()
    with pytest.raises(HeadCatalogueError, match="at least one prompt"):
        head_catalogue(gpt2_model, ["", " "])
    from types import SimpleNamespace

    one_token = SimpleNamespace(name="stub", dims=SimpleNamespace(n_ctx=64, d_vocab=100),
                                encode=lambda text: torch.tensor([3]))  # fmt: skip
    with pytest.raises(HeadCatalogueError, match="2 tokens or more"):
        head_catalogue(one_token, ["a"])
    with pytest.raises(HeadCatalogueError, match="shorter length"):
        head_catalogue(gpt2_model, [PROMPT], length=1000)
    with pytest.raises(HeadCatalogueError, match="Unknown metric"):
        cat.top("nonsense")


def test_route_importance_from_a_batch_joins_the_catalogue(gpt2_model):
    import pandas as pd

    cat = head_catalogue(gpt2_model, [PROMPT], n_random=1, length=8)
    summary = pd.DataFrame({"layer": [0, 2, 9], "head": [1, 3, 0], "route_share": [0.5, 1.0, 1.0],
                            "mean_contribution": [0.2, 0.4, 0.9]})  # fmt: skip
    both = cat.with_batch(summary)
    assert both.names == (*METRICS, "route_share", "mean_contribution")
    assert float(both.metrics["route_share"][2, 3]) == 1.0
    assert float(both.metrics["mean_contribution"][0, 1]) == pytest.approx(0.2)
    assert torch.isnan(both.metrics["route_share"][1, 1])  # not in the batch's summary
    assert both.top("route_share", 1)[0][:2] == (2, 3)  # the row for layer 9 is ignored
    assert "route_share" not in cat.names  # the original is unchanged
