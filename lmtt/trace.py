"""One forward pass, recorded: ``run_trace(model, prompt) -> Trace``.

A :class:`Trace` is immutable (a frozen record over a read-only mapping of tensors) and carries
everything the analysis modules read: tokens, logits, the residual stream before/between/after
every block, attention patterns, value vectors, MLP hidden activations and norm scales, plus a
reference to the model's (read-only) weights. Hooks are added and removed inside the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch

from lmtt.errors import NonFiniteActivationError, PromptError, UnsupportedArchitectureError
from lmtt.models import LoadedModel, ModelDims, ModelWeights

PER_LAYER_KINDS = (
    "resid_pre",
    "resid_mid",
    "pattern",
    "v",
    "mlp_post",
    "ln1_scale",
    "ln2_scale",
)
DEFAULT_CAPTURE = frozenset(PER_LAYER_KINDS)


@dataclass(frozen=True, eq=False)
class Trace:
    """The record of one forward pass. Shapes: T tokens, L layers, H heads, d = d_model."""

    model_name: str
    dims: ModelDims
    weights: ModelWeights
    tokens: torch.Tensor  # [T] token ids
    token_strs: tuple[str, ...]
    logits: torch.Tensor  # [T, V]
    vocab: Sequence[str]  # token id -> string, shared with the model
    activations: Mapping[tuple[str, int], torch.Tensor]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_layers(self) -> int:
        return self.dims.n_layers

    def _get(self, kind: str, layer: int) -> torch.Tensor:
        if not -self.n_layers <= layer < self.n_layers:
            raise IndexError(f"layer {layer} is out of range: the model has {self.n_layers}")
        layer %= self.n_layers
        try:
            return self.activations[(kind, layer)]
        except KeyError:
            raise KeyError(
                f"{kind!r} was not captured in this trace; pass capture={{..., {kind!r}}} "
                "to run_trace"
            ) from None

    def resid_pre(self, layer: int) -> torch.Tensor:
        """x[l]: residual entering block ``layer`` [T, d]; ``resid_pre(0)`` is the embedding."""
        return self._get("resid_pre", layer)

    def resid_mid(self, layer: int) -> torch.Tensor:
        """mid[l]: residual after attention, before the MLP [T, d]."""
        return self._get("resid_mid", layer)

    def resid_post(self, layer: int) -> torch.Tensor:
        """out[l]: residual after block ``layer`` [T, d]."""
        layer %= self.n_layers
        if layer == self.n_layers - 1:
            return self.activations[("resid_post", layer)]
        return self.resid_pre(layer + 1)

    def pattern(self, layer: int) -> torch.Tensor:
        """A[l]: attention pattern [H, T_query, T_key]; rows sum to 1."""
        return self._get("pattern", layer)

    def values(self, layer: int) -> torch.Tensor:
        """v[l]: value vectors [T, H_kv, d_head], *with* the value bias (as the model used them)."""
        return self._get("v", layer)

    def mlp_post(self, layer: int) -> torch.Tensor:
        """a[l]: MLP hidden activations [T, d_mlp] (after the nonlinearity / gating)."""
        return self._get("mlp_post", layer)

    def ln1_scale(self, layer: int) -> torch.Tensor:
        """Scale (std or RMS) the pre-attention norm divided by [T, 1]."""
        return self._get("ln1_scale", layer)

    def ln2_scale(self, layer: int) -> torch.Tensor:
        """Scale the pre-MLP norm divided by [T, 1]."""
        return self._get("ln2_scale", layer)

    def final_scale(self) -> torch.Tensor:
        """Scale the final norm divided by at each position [T, 1]."""
        return self.activations[("final_scale", self.n_layers - 1)]

    def probabilities(self, position: int = -1) -> torch.Tensor:
        """Next-token probabilities at ``position`` [V]."""
        return torch.softmax(self.logits[position], dim=-1)


def prepare_tokens(model: LoadedModel, prompt: str | bytes | Sequence[int] | torch.Tensor):
    """Token ids [T] for a prompt (text, UTF-8 bytes or ids), validated against the model."""
    if isinstance(prompt, bytes):
        prompt = prompt.decode("utf-8", errors="replace")
    if isinstance(prompt, str):
        if prompt == "":
            raise PromptError("The prompt is empty: type some text to trace.")
        # Lone surrogates (from undecodable bytes) cannot be tokenized; replace them.
        prompt = prompt.encode("utf-8", errors="replace").decode("utf-8")
        tokens = model.encode(prompt)
    else:
        tokens = torch.as_tensor(prompt, dtype=torch.long).flatten().cpu()
        if tokens.numel() == 0:
            raise PromptError("The prompt is empty: pass at least one token id.")
        bad = (tokens < 0) | (tokens >= model.dims.d_vocab)
        if bad.any():
            raise PromptError(
                f"Token id {int(tokens[bad][0])} is outside the vocabulary "
                f"(0..{model.dims.d_vocab - 1})."
            )
    n, limit = int(tokens.shape[0]), model.dims.n_ctx
    if n > limit:
        raise PromptError(
            f"The prompt is {n} tokens long, but {model.name} takes at most {limit} tokens. "
            f"Shorten it by at least {n - limit} tokens."
        )
    return tokens


def run_trace(
    model: LoadedModel,
    prompt: str | bytes | Sequence[int] | torch.Tensor,
    capture: Iterable[str] = DEFAULT_CAPTURE,
) -> Trace:
    """Run one forward pass and record what the analysis needs (``capture`` kinds)."""
    if model.is_encoder:
        raise UnsupportedArchitectureError(
            f"{model.name} is a {model.dims.family} encoder: the information-flow graph and "
            "logit lens are not supported for encoders yet (bidirectional, post-norm). Use the "
            "attention views (head view, model view, q.k, query-key map), `lmtt mask` and "
            "context search, which all work for encoders."
        )
    tokens = prepare_tokens(model, prompt)
    capture = frozenset(capture)
    unknown = capture - DEFAULT_CAPTURE
    if unknown:
        known = sorted(DEFAULT_CAPTURE)
        raise ValueError(f"Unknown capture kinds {sorted(unknown)}; known: {known}")
    L = model.dims.n_layers
    wanted = {(kind, layer) for kind in capture for layer in range(L)}
    wanted |= {("resid_pre", 0), ("resid_post", L - 1), ("final_scale", L - 1)}
    names = {model.hook_name(kind, layer): (kind, layer) for kind, layer in wanted}
    logits, raw = model.run_with_capture(tokens, list(names))
    missing = sorted(set(names) - set(raw))
    if missing:
        raise RuntimeError(f"hooks did not fire: {missing[:5]}")
    acts = {key: raw[name] for name, key in names.items()}
    _check_finite(acts, logits, L)
    return Trace(
        model_name=model.name,
        dims=model.dims,
        weights=model.weights,
        tokens=tokens,
        token_strs=tuple(model.token_strings(tokens)),
        logits=logits,
        vocab=model.vocab,
        activations=MappingProxyType(acts),
    )


def _check_finite(acts: dict, logits: torch.Tensor, n_layers: int) -> None:
    """Raise at the first block whose output is NaN or infinite, naming it."""
    checks = [(("resid_pre", 0), "the embedding", 0)]
    for layer in range(n_layers):
        checks.append((("resid_mid", layer), f"the attention of layer {layer}", layer))
        after = ("resid_pre", layer + 1) if layer + 1 < n_layers else ("resid_post", layer)
        checks.append((after, f"the MLP of layer {layer}", layer))
    for key, where, layer in checks:
        t = acts.get(key)
        if t is not None and not torch.isfinite(t).all():
            raise NonFiniteActivationError(
                f"NaN or infinite activations first appear in {where}. Try float32 "
                "(--dtype float32), or check the weights for corruption.",
                layer=layer,
            )
    if not torch.isfinite(logits).all():
        raise NonFiniteActivationError(
            "The logits are NaN or infinite (final norm / unembedding).", layer=n_layers - 1
        )
