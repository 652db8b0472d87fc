"""Loading models by catalog name, hub name, local Hugging Face folder or pip package.

``load_model(spec)`` returns a :class:`~lmtt.models.loaded.LoadedModel`. Every failure is one
clear error: an unknown name, an uncached hub model offline, a folder without config, weights
or tokenizer, corrupted weights, a device that does not exist, an unsupported architecture
(``lmtt.models.families`` names what is supported).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from lmtt.errors import (
    DeviceError,
    LmttError,
    ModelLoadError,
    ModelNotCachedError,
    ModelNotFoundError,
)
from lmtt.models.catalog import ModelCatalog, load_model_catalog
from lmtt.models.families import family_for
from lmtt.models.loaded import LoadedModel

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_device(device: str | None) -> str:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a device that exists here."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"Unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto.") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"Device {device!r} was asked for, but CUDA is not available on this machine "
                f"(torch {torch.__version__}). Use --device cpu (or auto)."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"Device {device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("Device 'mps' is not available on this machine. Use --device cpu.")
    elif dev.type != "cpu":
        raise DeviceError(f"Unsupported device {device!r}: use cpu, cuda, cuda:N, mps or auto.")
    return str(dev)


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise DeviceError(f"Unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def check_model_folder(folder: Path) -> str:
    """Validate a local HF folder; return its ``model_type``."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"{folder} is not a Hugging Face model folder: it has no config.json. Point lmtt at "
            "the folder written by `model.save_pretrained(...)` (with config.json, weights and "
            "tokenizer files)."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{config_path} is not valid JSON ({e}); re-create it.") from e
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ModelLoadError(
            f"{folder} has no weights: expected one of {', '.join(WEIGHT_FILES)}. Save the model "
            "with `model.save_pretrained(folder)` or copy its weight files there."
        )
    if not any(all((folder / f).is_file() for f in files) for files in TOKENIZER_FILES):
        raise ModelLoadError(
            f"{folder} has no tokenizer: expected tokenizer.json (or vocab.json + merges.txt, or "
            "tokenizer.model). Save it with `tokenizer.save_pretrained(folder)`."
        )
    model_type = str(config.get("model_type", "unknown"))
    family_for(model_type, str(folder), config)
    return model_type


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _resolve_hub(name: str, known: list[str]) -> tuple[str, str | None]:
    """Return (source to boot, model_type if known) for a hub name, or raise a clear error."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        config = json.loads(Path(cached).read_text(encoding="utf-8"))
        model_type = config.get("model_type")
        family_for(str(model_type), name, config)
        # Load from the cached snapshot folder: no network round trips.
        return str(Path(cached).parent), model_type
    if not _hub_reachable():
        what = (
            f"Hub model {name!r} is not in the local Hugging Face cache"
            if name in known
            else f"Model {name!r} is not a known model name ({', '.join(known)}), not a local "
            "folder, and not in the local Hugging Face cache"
        )
        raise ModelNotCachedError(
            f"{what}, and the hub cannot be reached from here (offline or HF_HUB_OFFLINE=1). "
            "Fix: pass a local model folder, or download it once on a machine with internet "
            f"(`huggingface-cli download {name}`) and copy the cache (~/.cache/huggingface) here."
        )
    return name, None


def load_model(spec: str, device: str = "auto", dtype: str = "float32") -> LoadedModel:
    """Load a model by catalog name, hub name or local folder."""
    if not spec or not str(spec).strip():
        raise ModelNotFoundError("No model given: pass a model name or a local folder.")
    spec = str(spec).strip()
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    source, model_type = _locate(spec)
    bridge = _boot(source, dev, torch_dtype)
    family = family_for(model_type or _hf_model_type(bridge), spec, _hf_config(bridge))
    return LoadedModel(spec, source, bridge, dev, dtype, family)


MLM_ARCHITECTURES = ("MaskedLM", "PreTraining")  # a config's architectures with an MLM head


def has_mlm_head_config(spec: str) -> bool | None:
    """Whether the model ``spec`` names was saved with a masked-LM head, read from its
    config.json before any weight loads (None when the config is not at hand: a hub model not
    cached yet). Raises like :func:`load_model` for a spec that names nothing."""
    source, _ = _locate(str(spec).strip())
    path = Path(source).expanduser() / "config.json"
    if not path.is_file():
        return None
    architectures = json.loads(path.read_text(encoding="utf-8")).get("architectures") or []
    return any(key in a for a in architectures for key in MLM_ARCHITECTURES)


def _locate(spec: str) -> tuple[str, str | None]:
    """(folder or hub name to boot, model_type when known before booting) of a model spec: a
    catalog name first, then a folder, then a hub name. A folder needs no (valid) catalog."""
    try:
        catalog = load_model_catalog()
    except LmttError:
        if not Path(spec).expanduser().exists():
            raise
        catalog = ModelCatalog(default="")
    entry = catalog.get(spec)
    source = entry.resolved_source() if entry else spec
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; pass the model *folder* that contains it.")
        return str(path), check_model_folder(path)
    if _HUB_NAME.match(source) and not source.startswith((".", "~")):
        return _resolve_hub(source, catalog.names())
    raise ModelNotFoundError(
        f"Model {spec!r} is not a known model ({', '.join(catalog.names())}), and no folder "
        "exists at that path. Pass a hub name (e.g. gpt2) or an existing local folder."
    )


def _hf_config(bridge) -> dict:
    config = getattr(getattr(bridge, "original_model", None), "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else {}


def _hf_model_type(bridge) -> str:
    hf_model = getattr(bridge, "original_model", None)
    return str(getattr(getattr(hf_model, "config", None), "model_type", "unknown"))


def _boot(source: str, device: str, dtype: torch.dtype):
    from transformer_lens.model_bridge import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(source, device=device, dtype=dtype)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear message
        raise ModelLoadError(
            f"Could not load the model from {source}: {type(e).__name__}: {str(e)[:500]}. "
            "If a weight file is truncated or corrupted, download or save it again."
        ) from e
    bridge.eval()
    return bridge
