"""Forward passes with edits: scoped hooks, and logits of chosen positions only."""

import pytest
import torch

from lmtt.models import load_model
from lmtt.models.intervene import HookEdit, run_edited
from lmtt.testing import make_tiny_bert


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "m")


@pytest.mark.parametrize("folder", ["gpt2_folder", "llama_folder", "bert_folder"])
def test_logits_of_chosen_positions_equal_the_full_logits_there(folder, request):
    model = load_model(str(request.getfixturevalue(folder)), "cpu")
    tokens = torch.tensor([[5, 7, 9, 11, 13], [2, 4, 6, 8, 10]])
    own = model.active_hook_count()  # the bridge's own (BERT's bridge keeps some)
    double = HookEdit("mlp_write", 0, lambda t, s: 2 * t)  # an edit, so the sliced run is edited
    full, _ = run_edited(model, tokens, [double])
    some, _ = run_edited(model, tokens, [double], positions=[4, 1])
    assert some.shape == (2, 2, full.shape[-1])
    torch.testing.assert_close(some, full[:, [4, 1]], atol=1e-5, rtol=1e-5)
    assert model.active_hook_count() == own  # no hook of ours outlives the call
