"""The hand-built induction circuit (lmtt.testing.circuits), loaded once per session."""

import pytest
import torch

from lmtt.causal.metric import make_metric
from lmtt.models import load_model
from lmtt.models.trace import run_trace
from lmtt.testing.circuits import ANSWER, INDUCTION_PROMPT, make_induction_circuit


@pytest.fixture(scope="session")
def circuit(tmp_path_factory):
    """(model, trace of the induction prompt, metric log p(the copied token))."""
    model = load_model(str(make_induction_circuit(tmp_path_factory.mktemp("c") / "m")), "cpu")
    trace = run_trace(model, torch.tensor(INDUCTION_PROMPT))
    return model, trace, make_metric(model, trace, target=ANSWER)
