"""A loaded model: the TransformerLens bridge, its family record, tokenizer, dims and weights."""

from __future__ import annotations

import inspect
import threading
from functools import cached_property

import torch

from lmtt.models.families import ROUTES, Family
from lmtt.models.lean_attention import lean_attention
from lmtt.models.moe import read_experts
from lmtt.models.score_rules import score_rules
from lmtt.models.tokens import vocab_strings
from lmtt.models.weights import read_dims, read_weights


class LoadedModel:
    """A loaded model: the bridge, its family, tokenizer, dimensions and weights.

    Never mutated after loading. Forward passes with hooks are serialised by a lock, so
    threads sharing one model never see each other's hooks; no hook outlives its call.
    """

    def __init__(self, name: str, source: str, bridge, device: str, dtype: str, family: Family):
        self.name = name
        self.source = source
        self.device = device
        self.dtype = dtype
        self.family = family
        self._bridge = bridge
        self._lock = threading.Lock()
        self.tokenizer = bridge.tokenizer
        self.experts = read_experts(bridge) if family.moe else None
        self.dims = read_dims(bridge, family, self.experts)
        self.score_rules = score_rules(bridge, self.dims.d_head)  # per layer: q . k -> pattern
        self.is_encoder = family.is_encoder
        archs = getattr(getattr(bridge.original_model, "config", None), "architectures", None)
        self.has_mlm_head = any(k in a for a in archs or [] for k in ("MaskedLM", "PreTraining"))
        routes = ROUTES in family.supports
        lens = not family.is_encoder or self.has_mlm_head
        self.weights = (
            read_weights(bridge, self.dims, family, lens, self.experts) if routes else None
        )

    def __repr__(self) -> str:
        d = self.dims
        return (
            f"LoadedModel({self.name!r}, {d.family}, {d.n_layers} layers x {d.n_heads} heads, "
            f"d_model {d.d_model}, device {self.device}, {self.dtype})"
        )

    @property
    def bridge(self):
        """The underlying ``TransformerBridge`` (for experts). lmtt changes it only inside
        :meth:`run_with_cache`, under the lock, for one forward pass (lean attention)."""
        return self._bridge

    @cached_property
    def vocab(self) -> tuple[str, ...]:
        """String of every token id (ids past the tokenizer's size read ``<id N>``)."""
        n_tok = min(len(self.tokenizer), self.dims.d_vocab)
        strs = vocab_strings(self.tokenizer, n_tok)
        return tuple(strs) + tuple(f"<id {i}>" for i in range(n_tok, self.dims.d_vocab))

    def encode(self, text: str) -> torch.Tensor:
        """Token ids [T] as the model sees them (BOS prepended where the model expects it)."""
        return self._bridge.to_tokens(text, truncate=False, move_to_device=False)[0].cpu()

    def token_strings(self, ids: torch.Tensor | list[int]) -> list[str]:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.vocab[i] for i in ids]

    def run_with_cache(
        self, tokens: torch.Tensor, hook_names: list[str], lean: bool = False,
        logits_at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
        """One forward pass on tokens [B, T] with the named hooks (scoped, under the lock):
        the logits [B, T, V] (with ``logits_at`` [B, K], those positions' only: [B, K, V]) and
        the raw activations, on the model's device; ``lean``: no attention pattern is asked
        for, so attention may skip its T x T tensors (:mod:`lmtt.models.lean_attention`). Use
        :func:`lmtt.models.capture.capture`, which names activations by kind and layer."""
        # a decoder builds no KV cache: nothing reads it, and attention with one is not lean
        kwargs = {} if self.is_encoder else {"use_cache": False}
        unembeds_some = logits_at is not None and self._unembeds_some
        if unembeds_some:  # transformers' own: the unembedding of those positions only
            kwargs["logits_to_keep"] = logits_at.to(torch.device(self.device))
        with self._lock, torch.inference_mode(), lean_attention(self._bridge, lean):
            logits, cache = self._bridge.run_with_cache(
                tokens.to(torch.device(self.device)),
                names_filter=list(hook_names),
                return_cache_object=False,
                **kwargs,
            )
        if unembeds_some and logits.shape[:2] != logits_at.shape:
            raise RuntimeError(
                f"transformers' logits_to_keep gave logits of shape {tuple(logits.shape)} for "
                f"positions {tuple(logits_at.shape)}: upgrade transformers (pip install -U "
                "transformers)."
            )
        if logits_at is not None and not unembeds_some:
            at = logits_at.to(logits.device)[..., None].expand(-1, -1, logits.shape[-1])
            logits = logits.gather(1, at)
        return logits, cache

    @cached_property
    def _unembeds_some(self) -> bool:
        """Whether the transformers model takes ``logits_to_keep`` with per-row positions
        (transformers' ``slice_logits_to_keep``, which takes a [B, K] index tensor)."""
        from transformers import modeling_utils

        if not hasattr(modeling_utils, "slice_logits_to_keep"):
            return False
        forward = getattr(self._bridge.original_model, "forward", None)
        try:
            return "logits_to_keep" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            return False

    def run_with_hooks(
        self, inputs: torch.Tensor, fwd_hooks: list, start_layer: int = 0, grad: bool = False
    ) -> torch.Tensor:
        """One forward pass with the given ``(hook name, fn)`` hooks, removed when it returns
        (under the lock): the logits [B, T, V]. ``inputs`` are tokens [B, T] or, with
        ``start_layer`` > 0, the residual [B, T, D] entering that block. With ``grad`` the pass
        builds the autograd graph. Use :mod:`lmtt.models.intervene`."""
        inputs = inputs.to(torch.device(self.device))
        if inputs.is_floating_point():  # a residual: in the weights' dtype
            inputs = inputs.to(next(self._bridge.parameters()).dtype)
        start = {"start_at_layer": start_layer} if start_layer else {}
        context = torch.enable_grad() if grad else torch.inference_mode()
        with self._lock, context:
            return self._bridge.run_with_hooks(inputs, fwd_hooks=fwd_hooks, **start)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain forward pass, no hooks: logits [B, T, V] on the model's device."""
        with torch.inference_mode():
            return self._bridge(tokens.to(torch.device(self.device)))

    def active_hook_count(self) -> int:
        """How many hooks are attached right now (0 outside of a call)."""
        return sum(len(hp.fwd_hooks) + len(hp.bwd_hooks) for hp in self._bridge.hook_dict.values())
