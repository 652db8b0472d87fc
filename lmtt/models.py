"""Loading models. The one module that knows TransformerLens (``TransformerBridge``).

``load_model(spec)`` takes a name from ``configs/models.yaml``, a hub name or a local Hugging Face
folder and returns a :class:`LoadedModel`: the bridge plus what the analysis needs in plain
tensors (:class:`ModelDims`, :class:`ModelWeights`) and a scoped, thread-safe way to run one
forward pass with a few hooks (:meth:`LoadedModel.run_with_capture`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlparse

import torch

from lmtt.config import LoadOptions, load_model_catalog
from lmtt.errors import (
    DeviceError,
    ModelLoadError,
    ModelNotCachedError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from lmtt.tokens import byte_level_text

# model_type (config.json) -> family name. Sequential pre-norm decoders only (DESIGN.md §1).
SUPPORTED_FAMILIES = {
    "gpt2": "GPT-2",
    "llama": "Llama",
    "mistral": "Mistral",
    "qwen2": "Qwen2",
}
REFUSED_FAMILIES = {
    "gptj": "GPT-J runs attention and MLP in parallel",
    "gpt_neox": "GPT-NeoX / Pythia run attention and MLP in parallel",
    "phi": "Phi runs attention and MLP in parallel",
    "falcon": "Falcon runs attention and MLP in parallel",
    "roberta": "RoBERTa is an encoder (bidirectional attention, post-norm)",
    "t5": "T5 is an encoder-decoder",
    "bart": "BART is an encoder-decoder",
}
# Encoders: attention views, masked-LM and context search; no information-flow graph yet.
ENCODER_FAMILIES = {"bert": "BERT"}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# What the analysis asks for (kind) -> TransformerLens hook name.
_HOOKS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "resid_mid": "blocks.{layer}.hook_resid_mid",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "pattern": "blocks.{layer}.attn.hook_pattern",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "mlp_post": "blocks.{layer}.mlp.hook_post",
    "ln1_scale": "blocks.{layer}.ln1.hook_scale",
    "ln2_scale": "blocks.{layer}.ln2.hook_scale",
    "final_scale": "ln_final.hook_scale",
}


def supported_families_text() -> str:
    return ", ".join(sorted(SUPPORTED_FAMILIES.values()))


@dataclass(frozen=True)
class ModelDims:
    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    n_ctx: int
    d_vocab: int
    norm: str  # "layernorm" or "rmsnorm"
    norm_eps: float


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """The weights the decomposition reads, float32, detached (never written to)."""

    W_O: torch.Tensor  # [L, H, d_head, d_model]
    b_V: torch.Tensor  # [L, H, d_head]  (per query head; zeros when the model has none)
    b_O: torch.Tensor  # [L, d_model]
    W_out: torch.Tensor  # [L, d_mlp, d_model]
    b_out: torch.Tensor  # [L, d_model]
    W_U: torch.Tensor  # [d_model, d_vocab]
    b_U: torch.Tensor  # [d_vocab]
    ln_final_w: torch.Tensor  # [d_model]
    ln_final_b: torch.Tensor  # [d_model] (zeros for RMSNorm)


class LoadedModel:
    """A loaded model: the bridge, its tokenizer, its dimensions and weights.

    Never mutated after loading. Forward passes with hooks are serialised by a lock, so
    threads sharing one model never see each other's hooks; no hook outlives its call.
    """

    def __init__(self, name: str, source: str, bridge, device: str, dtype: str, model_type: str):
        self.name = name
        self.source = source
        self.device = device
        self.dtype = dtype
        self._bridge = bridge
        self._lock = threading.Lock()
        self.tokenizer = bridge.tokenizer
        self.model_type = model_type
        self.dims = _read_dims(bridge, model_type)
        self.is_encoder = model_type in ENCODER_FAMILIES
        archs = getattr(getattr(bridge.original_model, "config", None), "architectures", None)
        self.has_mlm_head = any("MaskedLM" in a or "PreTraining" in a for a in archs or [])
        self.weights = None if self.is_encoder else _read_weights(bridge, self.dims)

    def __repr__(self) -> str:
        d = self.dims
        return (
            f"LoadedModel({self.name!r}, {d.family}, {d.n_layers} layers x {d.n_heads} heads, "
            f"d_model {d.d_model}, device {self.device}, {self.dtype})"
        )

    @property
    def bridge(self):
        """The underlying ``TransformerBridge`` (for experts; lmtt never mutates it)."""
        return self._bridge

    @cached_property
    def vocab(self) -> tuple[str, ...]:
        """String of every token id (ids past the tokenizer's size read ``<id N>``)."""
        n_tok = min(len(self.tokenizer), self.dims.d_vocab)
        strs = self.tokenizer.batch_decode([[i] for i in range(n_tok)])
        partial = [i for i, s in enumerate(strs) if "\ufffd" in s]
        if partial:  # byte-level pieces of a multi-byte character: show their bytes
            raw = self.tokenizer.convert_ids_to_tokens(partial)
            for i, piece in zip(partial, raw, strict=True):
                strs[i] = byte_level_text(piece, strs[i])
        return tuple(strs) + tuple(f"<id {i}>" for i in range(n_tok, self.dims.d_vocab))

    def hook_name(self, kind: str, layer: int | None = None) -> str:
        return _HOOKS[kind].format(layer=layer)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids [T] as the model sees them (BOS prepended where the model expects it)."""
        return self._bridge.to_tokens(text, truncate=False, move_to_device=False)[0].cpu()

    def token_strings(self, ids: torch.Tensor | list[int]) -> list[str]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.vocab[i] for i in ids]

    def run_with_capture(
        self, tokens: torch.Tensor, hook_names: list[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward pass on tokens [T]; returns logits [T, V] and the named activations.

        Activations lose their batch dimension and are float32 on the CPU.
        """
        logits, acts = self.run_batch_capture(tokens.unsqueeze(0), hook_names)
        return logits[0], {k: v[0] for k, v in acts.items()}

    def run_batch_capture(
        self, tokens: torch.Tensor, hook_names: list[str], keep_logits: bool = True
    ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """One forward pass on tokens [B, T]: logits [B, T, V] (or None) and the named
        activations [B, T, ...], float32 on the CPU."""
        with self._lock, torch.inference_mode():
            logits, cache = self._bridge.run_with_cache(
                tokens.to(torch.device(self.device)),
                names_filter=list(hook_names),
                return_cache_object=False,
            )
        acts = {k: v.float().cpu() for k, v in cache.items()}
        return (logits.float().cpu() if keep_logits else None), acts

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain forward pass, no hooks: logits [B, T, V] on the model's device."""
        with torch.inference_mode():
            return self._bridge(tokens.to(torch.device(self.device)))

    def active_hook_count(self) -> int:
        """How many hooks are attached right now (0 outside of a call)."""
        return sum(len(hp.fwd_hooks) + len(hp.bwd_hooks) for hp in self._bridge.hook_dict.values())


def _read_dims(bridge, model_type: str) -> ModelDims:
    cfg = bridge.cfg
    n_kv = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    return ModelDims(
        family={**SUPPORTED_FAMILIES, **ENCODER_FAMILIES}.get(model_type, model_type),
        n_layers=int(cfg.n_layers),
        n_heads=int(cfg.n_heads),
        n_kv_heads=int(n_kv),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=int(bridge.blocks[0].mlp.W_out.shape[0]),
        n_ctx=int(cfg.n_ctx),
        d_vocab=int(cfg.d_vocab),
        norm="rmsnorm" if cfg.normalization_type == "RMS" else "layernorm",
        norm_eps=float(cfg.eps),
    )


def _read_weights(bridge, dims: ModelDims) -> ModelWeights:
    def f32(t: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
        if t is None:
            return torch.zeros(shape)
        return t.detach().float().cpu().reshape(shape)

    H, dh, d = dims.n_heads, dims.d_head, dims.d_model
    group = dims.n_heads // dims.n_kv_heads
    W_O, b_V, b_O, W_out, b_out = [], [], [], [], []
    for block in bridge.blocks:
        attn, mlp = block.attn, block.mlp
        W_O.append(f32(attn.W_O, (H, dh, d)))
        bv = f32(attn.b_V, (dims.n_kv_heads, dh)).repeat_interleave(group, dim=0)
        b_V.append(bv)
        b_O.append(f32(attn.b_O, (d,)))
        W_out.append(f32(mlp.W_out, (dims.d_mlp, d)))
        b_out.append(f32(mlp.b_out, (d,)))
    ln = bridge.ln_final
    return ModelWeights(
        W_O=torch.stack(W_O),
        b_V=torch.stack(b_V),
        b_O=torch.stack(b_O),
        W_out=torch.stack(W_out),
        b_out=torch.stack(b_out),
        W_U=f32(bridge.W_U, (d, dims.d_vocab)),
        b_U=f32(getattr(bridge, "b_U", None), (dims.d_vocab,)),
        ln_final_w=f32(ln.w, (d,)),
        ln_final_b=f32(getattr(ln, "b", None), (d,)),
    )


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


def check_architecture(model_type: str, where: str) -> None:
    if model_type in SUPPORTED_FAMILIES or model_type in ENCODER_FAMILIES:
        return
    reason = REFUSED_FAMILIES.get(model_type, f"architecture {model_type!r} is not supported")
    raise UnsupportedArchitectureError(
        f"{where}: {reason}, which lmtt's residual decomposition does not handle yet. "
        f"Supported families: {supported_families_text()} (sequential pre-norm decoders), "
        "and BERT encoders for the attention views."
    )


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
    check_architecture(model_type, str(folder))
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
        model_type = json.loads(Path(cached).read_text(encoding="utf-8")).get("model_type")
        check_architecture(str(model_type), name)
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


def load_model(
    spec: str,
    device: str = "auto",
    dtype: str = "float32",
    options: LoadOptions | None = None,
) -> LoadedModel:
    """Load a model by catalog name, hub name or local folder."""
    if options is not None:
        device, dtype = options.device, options.dtype
    if not spec or not str(spec).strip():
        raise ModelNotFoundError("No model given: pass a model name or a local folder.")
    spec = str(spec).strip()
    catalog = load_model_catalog()
    entry = catalog.get(spec)
    source = entry.resolved_source() if entry else spec
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file; pass the model *folder* that contains it.")
        model_type = check_model_folder(path)
        source = str(path)
    elif _HUB_NAME.match(source) and not source.startswith((".", "~")):
        source, model_type = _resolve_hub(source, catalog.names())
    else:
        raise ModelNotFoundError(
            f"Model {spec!r} is not a known model ({', '.join(catalog.names())}), and no folder "
            "exists at that path. Pass a hub name (e.g. gpt2) or an existing local folder."
        )
    bridge = _boot(source, dev, torch_dtype)
    if model_type is None:
        model_type = _hf_model_type(bridge)
        check_architecture(model_type, spec)
    return LoadedModel(spec, source, bridge, dev, dtype, model_type)


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
