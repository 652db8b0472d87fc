"""Knock one part out: the prediction before and after, on the hand-built circuit."""

import pytest

from lmtt.causal.interventions import AttentionEdge, HeadWrite, Intervention, MlpWrite
from lmtt.causal.knockout import knock_out
from lmtt.causal.run import run_scenarios
from lmtt.testing.circuits import ANSWER, INDUCTION_PROMPT

LAST = len(INDUCTION_PROMPT) - 1


def test_removing_the_induction_edge_loses_the_copied_token(circuit):
    model, trace, metric = circuit
    k = knock_out(model, trace, [Intervention(AttentionEdge(1, LAST, 2))], metric)
    assert k.top_before[0].token_id == ANSWER and k.top_before[0].prob > 0.9
    assert k.top_after[0].token_id != ANSWER
    assert k.before == pytest.approx(float(metric(trace.logits[None])), abs=1e-6)
    assert k.change < -1.0  # log p(B) falls by more than a nat
    assert k.to_json(trace.vocab)["change"] == k.change


def test_the_dead_heads_write_changes_nothing(circuit):
    model, trace, metric = circuit
    k = knock_out(model, trace, [Intervention(HeadWrite(0, 1, LAST))], metric)
    assert abs(k.change) < 1e-3  # as the unread edges of test_circuit
    assert [s.token_id for s in k.top_after] == [s.token_id for s in k.top_before]


def test_knock_out_agrees_with_the_batched_sweep(circuit):
    model, trace, metric = circuit
    removed = [Intervention(MlpWrite(0, LAST)), Intervention(HeadWrite(1, 0, LAST))]
    k = knock_out(model, trace, removed, metric)
    (together,) = run_scenarios(model, trace, [removed], metric).tolist()
    assert k.after == pytest.approx(together, abs=1e-5)
