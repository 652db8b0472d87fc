"""Capture what the attention views need: patterns, rotated queries and keys, hidden states.

``capture_attention(model, text)`` works for decoders and encoders alike (encoders attend both
ways: no causal mask). The result is an immutable :class:`AttentionTrace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtt.errors import LmttError
from lmtt.model_attention import rotate_qk
from lmtt.models import LoadedModel
from lmtt.trace import prepare_tokens


class AttentionViewError(LmttError):
    """A bad layer, head or position for an attention view."""


@dataclass(frozen=True, eq=False)
class AttentionTrace:
    model_name: str
    is_encoder: bool
    tokens: torch.Tensor  # [T]
    token_strs: tuple[str, ...]
    patterns: torch.Tensor  # [L, H, T, T] (query, key); rows sum to 1
    queries: torch.Tensor  # [L, T, H, dh], rotary applied
    keys: torch.Tensor  # [L, T, H, dh], rotary applied, key/value heads repeated per group
    hidden: torch.Tensor | None  # [L + 1, T, d_model]: the residual before each layer, then out

    @property
    def n_layers(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.patterns.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.patterns.shape[-1])

    @property
    def scale(self) -> float:
        return float(self.queries.shape[-1]) ** -0.5

    def check(self, layer: int, head: int | None = None, query: int | None = None) -> None:
        if not 0 <= layer < self.n_layers:
            raise AttentionViewError(f"Layer {layer} is out of range: 0..{self.n_layers - 1}.")
        if head is not None and not 0 <= head < self.n_heads:
            raise AttentionViewError(f"Head {head} is out of range: 0..{self.n_heads - 1}.")
        if query is not None and not 0 <= query < self.n_tokens:
            raise AttentionViewError(
                f"Token position {query} is out of range: 0..{self.n_tokens - 1}."
            )

    def key_mask(self) -> torch.Tensor:
        """[T, T] True where a query may attend a key (everywhere for encoders)."""
        T = self.n_tokens
        full = torch.ones(T, T, dtype=torch.bool)
        return full if self.is_encoder else torch.tril(full)


def capture_attention(
    model: LoadedModel,
    text: str | torch.Tensor,
    hidden: bool = False,
    layers: list[int] | None = None,
) -> AttentionTrace:
    """One forward pass; ``hidden`` also keeps the residual stream (for context search).

    ``layers`` limits the patterns, queries and keys to those layers (in that order).
    """
    return capture_attention_and_logits(model, text, hidden, layers)[1]


def capture_attention_and_logits(
    model: LoadedModel,
    text: str | torch.Tensor,
    hidden: bool = False,
    layers: list[int] | None = None,
) -> tuple[torch.Tensor, AttentionTrace]:
    """Like :func:`capture_attention`, also returning the model's output logits [T, V] (for a
    masked-LM, its predictions) from the same forward pass."""
    tokens = prepare_tokens(model, text)
    L, H = model.dims.n_layers, model.dims.n_heads
    layers = list(range(L)) if layers is None else list(layers)
    if not layers:
        raise AttentionViewError("No layer asked for: pass at least one layer.")
    for layer in layers:
        if not 0 <= layer < L:
            raise AttentionViewError(f"Layer {layer} is out of range: 0..{L - 1}.")
    names = {}
    for layer in layers:
        for kind in ("pattern", "q", "k"):
            names[(kind, layer)] = model.hook_name(kind, layer)
    if hidden:
        names |= _residual_hooks(model)
    logits, acts = model.run_with_capture(tokens, list(names.values()))
    queries, keys = [], []
    for layer in layers:
        q, k = rotate_qk(model, acts[names[("q", layer)]], acts[names[("k", layer)]])
        queries.append(q)
        keys.append(k.repeat_interleave(H // k.shape[1], dim=1))
    trace = AttentionTrace(
        model.name,
        model.is_encoder,
        tokens,
        tuple(model.token_strings(tokens)),
        torch.stack([acts[names[("pattern", layer)]] for layer in layers]),
        torch.stack(queries),
        torch.stack(keys),
        _stack_residual(model, names, acts) if hidden else None,
    )
    return logits, trace


def capture_hidden(model: LoadedModel, tokens: torch.Tensor) -> torch.Tensor:
    """The residual stream only, for tokens [T]: [L + 1, T, d_model] (before each layer, then
    the output of the last one). No attention hooks: what context search needs."""
    tokens = prepare_tokens(model, tokens)
    names = _residual_hooks(model)
    _, acts = model.run_batch_capture(tokens.unsqueeze(0), list(names.values()), False)
    return _stack_residual(model, names, {k: v[0] for k, v in acts.items()})


def _residual_hooks(model: LoadedModel) -> dict[tuple[str, int], str]:
    L = model.dims.n_layers
    names = {("resid_pre", layer): model.hook_name("resid_pre", layer) for layer in range(L)}
    names[("resid_post", L - 1)] = model.hook_name("resid_post", L - 1)
    return names


def _stack_residual(model: LoadedModel, names: dict, acts: dict) -> torch.Tensor:
    L = model.dims.n_layers
    return torch.stack(
        [acts[names[("resid_pre", layer)]] for layer in range(L)]
        + [acts[names[("resid_post", L - 1)]]]
    )
