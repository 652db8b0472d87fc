import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from lmtt.causal.metric import make_metric  # noqa: E402
from lmtt.flow.score import score_kinds  # noqa: E402
from lmtt.models import load_model  # noqa: E402
from lmtt.models.trace import run_trace  # noqa: E402
from lmtt.testing import make_tiny_model  # noqa: E402
from lmtt.testing.circuits import ANSWER, INDUCTION_PROMPT, make_induction_circuit  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data folder {SHARED_DATA} is missing (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def gpt2_folder(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "gpt2", "gpt2", n_layers=3)


@pytest.fixture(scope="session")
def llama_folder(tmp_path_factory) -> Path:
    return make_tiny_model(
        tmp_path_factory.mktemp("tiny") / "llama", "llama", n_layers=3, n_heads=4, n_kv_heads=2
    )


@pytest.fixture(scope="session")
def gpt2_model(gpt2_folder):
    return load_model(str(gpt2_folder), device="cpu")


@pytest.fixture(scope="session")
def llama_model(llama_folder):
    return load_model(str(llama_folder), device="cpu")


@pytest.fixture(scope="session", params=["gpt2", "llama"])
def tiny_model(request, gpt2_model, llama_model):
    return {"gpt2": gpt2_model, "llama": llama_model}[request.param]


@pytest.fixture(scope="session")
def circuit(tmp_path_factory):
    """The hand-built induction circuit (lmtt.testing.circuits): (model, trace of the
    induction prompt with queries and keys, metric log p(the copied token))."""
    model = load_model(str(make_induction_circuit(tmp_path_factory.mktemp("c") / "m")), "cpu")
    kinds = score_kinds(model.family)
    trace = run_trace(model, torch.tensor(INDUCTION_PROMPT), capture=kinds)
    return model, trace, make_metric(model, trace, target=ANSWER)
