"""One forward pass, recorded: ``run_trace(model, prompt) -> Trace``.

A :class:`Trace` is the one record of a forward pass that every wing reads: the routes
(``lmtt.flow``) and the attention views (``lmtt.attention``) alike. It is immutable (a frozen
record over a read-only mapping of tensors) and holds the kinds of activation it was asked to
capture: the residual stream before/between/after every block, attention patterns, queries and
keys (rotated where the model rotates them), value vectors, MLP hidden activations and norm
scales, plus the model's (read-only) weights. Hooks are added and removed inside the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from jaxtyping import Bool, Float, Int

from lmtt.errors import (
    NotCapturedError,
    PromptError,
    UnsupportedArchitectureError,
    check_index,
)
from lmtt.models.capture import capture
from lmtt.models.families import ROUTES, Family
from lmtt.models.finite import check_finite
from lmtt.models.pattern_rows import rebuilt_rows
from lmtt.models.score_rules import ScoreRule
from lmtt.models.weights import ModelDims, ModelWeights, repeat_kv

KNOWN_KINDS = frozenset(
    ("resid_pre", "resid_mid", "resid_post", "pattern", "q", "k", "v", "mlp_post", "attn_out",
     "mlp_out", "ln1_scale", "ln2_scale", "attn_out_scale", "mlp_out_scale", "router",
     "q_norm_scale", "k_norm_scale")
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class Trace:
    """The record of one forward pass. Shapes: T tokens, L layers, H heads, d = d_model."""

    model_name: str
    family: Family
    dims: ModelDims
    weights: ModelWeights | None  # None for families without routes (encoders)
    tokens: Int[torch.Tensor, " T"]
    token_strs: tuple[str, ...]
    logits: Float[torch.Tensor, "T V"] | None  # None: a batch's trace, unembedded elsewhere
    vocab: Sequence[str]  # token id -> string, shared with the model
    activations: Mapping[tuple[str, int], torch.Tensor]
    score_rules: tuple[ScoreRule, ...] = ()  # per layer; () for the plain scaled dot product
    # A stacked trace (lmtt.models.batched.stack_traces) lays several prompts of one decoder's
    # batch end to end, each padded to ``stride`` positions: position b * stride + p is
    # prompt b's p, and a pattern row's keys are its own prompt's. None: one prompt.
    stride: int | None = None

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def n_layers(self) -> int:
        return self.dims.n_layers

    @property
    def n_heads(self) -> int:
        return self.dims.n_heads

    def layers(self, kind: str) -> tuple[int, ...]:
        """The layers at which ``kind`` was captured, in order."""
        return tuple(sorted(layer for k, layer in self.activations if k == kind))

    def check(self, layer: int | None = None, head: int | None = None, position=None) -> None:
        """Raise :class:`OutOfRangeError` (naming the valid range) for a bad index."""
        if layer is not None:
            check_index("Layer", layer, self.n_layers)
        if head is not None:
            check_index("Head", head, self.n_heads)
        if position is not None:
            check_index("Token position", position, self.n_tokens)

    def _get(self, kind: str, layer: int) -> torch.Tensor:
        layer = check_index("Layer", layer, self.n_layers, negative=True)
        try:
            return self.activations[(kind, layer)]
        except KeyError:
            raise NotCapturedError(
                f"{kind!r} of layer {layer} was not captured in this trace; pass "
                f"capture={{..., {kind!r}}} (and that layer) to run_trace"
            ) from None

    def resid_pre(self, layer: int) -> Float[torch.Tensor, "T d"]:
        """x[l]: residual entering block ``layer``; ``resid_pre(0)`` is the embedding."""
        return self._get("resid_pre", layer)

    def resid_mid(self, layer: int) -> Float[torch.Tensor, "T d"]:
        """mid[l]: residual after attention, before the MLP."""
        return self._get("resid_mid", layer)

    def resid_post(self, layer: int) -> Float[torch.Tensor, "T d"]:
        """out[l]: residual after block ``layer``."""
        layer = check_index("Layer", layer, self.n_layers, negative=True)
        if layer == self.n_layers - 1:
            return self._get("resid_post", layer)
        return self.resid_pre(layer + 1)

    def residual_stream(self) -> Float[torch.Tensor, "L_plus_1 T d"]:
        """The residual before every block, then after the last one."""
        states = [self.resid_pre(layer) for layer in range(self.n_layers)]
        return torch.stack([*states, self.resid_post(self.n_layers - 1)])

    def pattern(self, layer: int) -> Float[torch.Tensor, "H T_query T_key"]:
        """A[l]: attention pattern; rows sum to 1. A trace that kept the queries and keys
        instead (the routes' default where they rebuild the pattern) computes it, one layer
        at a time: prefer :meth:`pattern_rows` for a few queries."""
        if self.stride is not None:
            raise ValueError("A stacked trace has one pattern per prompt: read pattern_rows.")
        if not self._rebuilds_pattern(layer):
            return self._get("pattern", layer)
        return self.pattern_rows(layer, torch.arange(self.n_tokens))

    def pattern_rows(self, layer: int, queries) -> Float[torch.Tensor, "H Q S"]:
        """The pattern's rows at the positions ``queries`` (a LongTensor or list), over the
        :attr:`key_span` keys of each query's prompt, from the stored pattern or computed from
        the queries and keys: softmax(q . k * scale) over the keys each query may attend
        (equal to the model's own, tested per family)."""
        idx = torch.as_tensor(queries, dtype=torch.long).reshape(-1)
        if not self._rebuilds_pattern(layer):
            return self._get("pattern", layer)[:, idx]
        return rebuilt_rows(self, layer, idx)

    @property
    def key_span(self) -> int:
        """How many keys a pattern row has: the prompt's tokens (a stacked trace's stride)."""
        return self.n_tokens if self.stride is None else self.stride

    def _rebuilds_pattern(self, layer: int) -> bool:
        """Whether ``layer``'s pattern is computed from this trace's queries and keys: it was
        not stored, and they were, and they make it."""
        if ("pattern", layer) in self.activations:
            return False
        held = ("q", layer) in self.activations and ("k", layer) in self.activations
        return held and self.family.qk_rows

    def score_rule(self, layer: int) -> ScoreRule:
        """How ``layer`` turns q . k into its pattern (scale, soft-cap, sliding window)."""
        if self.score_rules:
            return self.score_rules[layer]
        return ScoreRule(self.attention_scale)

    def queries(self, layer: int) -> Float[torch.Tensor, "T H d_head"]:
        """Query vectors, rotated for rotary models (what the scores are made of)."""
        return self._get("q", layer)

    def keys(self, layer: int) -> Float[torch.Tensor, "T H d_head"]:
        """Key vectors, rotated for rotary models, key heads repeated per query head."""
        return repeat_kv(self._get("k", layer), self.n_heads, dim=1)

    def values(self, layer: int) -> Float[torch.Tensor, "T H_kv d_head"]:
        """v[l]: value vectors *with* the value bias (as the model used them)."""
        return self._get("v", layer)

    def mlp_post(self, layer: int) -> Float[torch.Tensor, "T d_mlp"]:
        """a[l]: MLP hidden activations (after the nonlinearity / gating)."""
        return self._get("mlp_post", layer)

    def ln1_scale(self, layer: int) -> Float[torch.Tensor, "T 1"]:
        """Scale (std or RMS) the pre-attention norm divided by."""
        return self._get("ln1_scale", layer)

    def ln2_scale(self, layer: int) -> Float[torch.Tensor, "T 1"]:
        """Scale the pre-MLP norm divided by."""
        return self._get("ln2_scale", layer)

    def router(self, layer: int) -> Float[torch.Tensor, "T E"]:
        """A mixture of experts' router weight of every expert (0 where not chosen; the
        shared expert's gate last)."""
        return self._get("router", layer)

    def block_write(self, block: str, layer: int) -> Float[torch.Tensor, "T d"]:
        """What block ``block`` ("attn" or "mlp") writes (parallel blocks, where no residual
        state lies between the two)."""
        return self._get(f"{block}_out", layer)

    def out_scale(self, block: str, layer: int) -> Float[torch.Tensor, "T 1"]:
        """Scale of the norm block ``block``'s write passes through (sandwich and post
        norms)."""
        return self._get(f"{block}_out_scale", layer)

    def qk_norm_scale(self, side: str, layer: int) -> torch.Tensor:
        """Scale of the norm on the queries (``side`` "q") or keys ("k"): [H, T, 1] for
        per-head norms (key heads for "k"), [T, 1] for a norm over every head."""
        return self._get(f"{side}_norm_scale", layer)

    def final_scale(self) -> Float[torch.Tensor, "T 1"]:
        """Scale the final norm divided by at each position."""
        return self._get("final_scale", self.n_layers - 1)

    @property
    def attention_scale(self) -> float:
        """The factor the query-key dot products are multiplied by before the softmax."""
        return float(self.dims.d_head) ** -0.5

    def key_mask(self, layer: int | None = None) -> Bool[torch.Tensor, "T_query T_key"]:
        """True where a query may attend a key (everywhere for encoders); with ``layer``, within
        that layer's sliding window too."""
        if self.stride is not None:
            raise ValueError("A stacked trace masks each prompt apart: read visible_keys.")
        T = self.n_tokens
        if not self.family.causal:
            return torch.ones(T, T, dtype=torch.bool)
        return self.visible_keys(layer, 0, T, T)

    def visible_keys(self, layer: int | None, start: int, stop: int, n_keys: int) -> torch.Tensor:
        """A decoder's [stop - start, n_keys] mask: the keys at or before each query (positions
        ``start ... stop`` of its prompt), within ``layer``'s window (if any)."""
        back = torch.arange(start, stop)[:, None] - torch.arange(n_keys)[None, :]
        window = None if layer is None else self.score_rule(layer).window
        return (back >= 0) if window is None else (back >= 0) & (back < window)

    def scores_from_dots(
        self, layer: int, dots: torch.Tensor, head: int | None = None
    ) -> torch.Tensor:
        """``layer``'s pre-softmax scores from q . k products: of every head ([H, ..., T_key],
        ``head`` None) or of ``head`` ([..., T_key]); scaled, soft-capped where the layer caps
        them, plus ALiBi's per-head bias (slope * key position) where present. The mask is
        :meth:`key_mask`'s."""
        rule = self.score_rule(layer)
        scores = dots * rule.scale
        if rule.softcap is not None:
            scores = torch.tanh(scores / rule.softcap) * rule.softcap
        if rule.alibi is not None:
            slopes = torch.tensor(rule.alibi)
            slopes = slopes[head] if head is not None else slopes.view(-1, *[1] * (dots.ndim - 1))
            scores = scores + slopes * torch.arange(dots.shape[-1], dtype=scores.dtype)
        return scores

    def default_target(self) -> int:
        """The position whose prediction is explained by default: a masked LM's first
        [MASK], otherwise the last token."""
        return default_target(self.tokens, self.dims.mask_token_id)

    def probabilities(self, position: int = -1) -> Float[torch.Tensor, " V"]:
        """Next-token probabilities at ``position``."""
        return torch.softmax(self.all_logits()[position], dim=-1)

    def all_logits(self) -> Float[torch.Tensor, "T V"]:
        """The logits at every position (refused for a batch job's trace, which kept none)."""
        if self.logits is None:
            raise NotCapturedError("This trace kept no logits (a batch job's): trace it alone.")
        return self.logits


def default_target(tokens: Int[torch.Tensor, " T"], mask_token_id: int | None) -> int:
    """The position whose prediction is explained by default: the first ``mask_token_id``
    (a masked LM's [MASK]), otherwise the last token."""
    found = (tokens == mask_token_id).nonzero() if mask_token_id is not None else torch.empty(0)
    return int(found[0]) if len(found) else int(tokens.shape[0]) - 1


def prepare_tokens(model, prompt: str | bytes | Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Token ids [T] for a prompt (text, UTF-8 bytes or ids), validated against the model."""
    if isinstance(prompt, bytes):
        prompt = prompt.decode("utf-8", errors="replace")
    if isinstance(prompt, str):
        if prompt == "":
            raise PromptError("The prompt is empty: type some text to trace.")
        if not prompt.strip():
            raise PromptError("The prompt is only whitespace: type some text to trace.")
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


def route_kinds(model, n_tokens: int | None = None) -> frozenset[str]:
    """The per-layer kinds lmtt.flow reads for this model (refused where routes are not
    supported). Where the queries and keys make the pattern (under the model's score rules),
    they are kept instead of it: (H + H_kv) T d_head floats a layer, not H T^2 (the rows are
    computed when asked). Given the prompts' ``n_tokens`` (a batch of short prompts), the
    pattern is kept where it is no larger: rows are then read, not computed."""
    if ROUTES not in model.family.supports:
        _check_kinds(model, frozenset({"mlp_post"}))
    kinds = model.family.route_kinds - {"final_scale"}
    d = model.dims
    small = n_tokens is not None and d.n_heads * n_tokens <= (d.n_heads + d.n_kv_heads) * d.d_head
    if {"q", "k"} <= model.family.capturable and model.family.qk_rows and not small:
        kinds = (kinds - {"pattern"}) | {"q", "k"}
    return kinds


def _check_kinds(model, kinds: frozenset[str]) -> None:
    unknown = kinds - KNOWN_KINDS
    if unknown:
        raise ValueError(f"Unknown capture kinds {sorted(unknown)}; known: {sorted(KNOWN_KINDS)}")
    family = model.family
    if kinds <= family.capturable:
        return
    if ROUTES not in family.supports:
        raise UnsupportedArchitectureError(
            f"{model.name} is a {family.name} {family.role}: the information-flow graph and "
            "logit lens are not supported for it yet. Use the attention views (head view, "
            "model view, q.k, query-key map), `lmtt mask` and context search, which all work "
            f"for {family.name}."
        )
    missing = sorted(kinds - family.capturable)
    raise UnsupportedArchitectureError(f"{model.name} ({family.name}) cannot capture {missing}.")


def run_trace(
    model,
    prompt: str | bytes | Sequence[int] | torch.Tensor,
    capture: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
) -> Trace:
    """Run one forward pass and record the ``capture`` kinds (default: what the routes read
    for this model's family) at ``layers`` (default: every layer; the embedding and the last
    residual are always kept)."""
    if capture is None:
        capture = route_kinds(model)
    L = model.dims.n_layers
    layers = range(L) if layers is None else [check_index("Layer", x, L) for x in layers]
    return trace_activations(model, prompt, {(kind, x) for kind in capture for x in layers})


def trace_activations(
    model, prompt: str | bytes | Sequence[int] | torch.Tensor, wanted: Iterable[tuple[str, int]]
) -> Trace:
    """Like :func:`run_trace`, with the activations named one by one as (kind, layer)."""
    wanted = complete_wanted(model, wanted)
    tokens = prepare_tokens(model, prompt)
    logits, acts = _capture_one(model, tokens, wanted)
    return record(model, tokens, logits, acts)


def complete_wanted(model, wanted: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """The activations asked for (their kinds checked), plus what every trace keeps: the
    embedding, the last residual and the final norm's scale."""
    wanted = set(wanted)
    _check_kinds(model, frozenset(kind for kind, _ in wanted))
    L = model.dims.n_layers
    wanted |= {("resid_pre", 0), ("resid_post", L - 1)}
    if "final_scale" in model.family.capturable:
        wanted.add(("final_scale", L - 1))
    return wanted


def record(model, tokens: torch.Tensor, logits: torch.Tensor | None, acts: dict) -> Trace:
    """The :class:`Trace` of one prompt's tokens [T], logits [T, V] (or None) and activations
    (refused if any block's output is NaN or infinite)."""
    check_finite(acts, logits, model.dims.n_layers)
    return Trace(
        model_name=model.name,
        family=model.family,
        dims=model.dims,
        weights=model.weights,
        tokens=tokens,
        token_strs=tuple(model.token_strings(tokens)),
        logits=logits,
        vocab=model.vocab,
        activations=MappingProxyType(acts),
        score_rules=model.score_rules,
    )


def _capture_one(model, tokens: torch.Tensor, wanted: set):
    logits, acts = capture(model, tokens.unsqueeze(0), wanted)
    return logits[0], {key: value[0] for key, value in acts.items()}
