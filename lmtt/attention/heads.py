"""The head catalogue: every attention head scored for the classic head types over prompts.

For each head, averaged over the prompts (or the repeated random sequences):

- ``previous_token``: the share of its attention on the token just before the query;
- ``induction``: on sequences of random tokens repeated once, the share on the token after the
  earlier copy of the query's token (where an induction head looks);
- ``duplicate_token``: on the same sequences, the share on earlier copies of the query's token;
- ``first_token``: the share on position 0 (an attention "sink"), queries after the first;
- ``entropy``: the entropy of its attention row in bits, queries after the first (0: one key).

Each prompt's first PROMPT_TOKENS tokens (at most the model's context) are scored.

The first three are TransformerLens's head detector measure (``mul``: the attention inside
its reference pattern over all the attention), vectorised over heads and checked against
TransformerLens's own score. ``best_prompt`` names, per metric and head, the prompt where the
head scores highest (to show its pattern there). ``with_batch`` adds each head's route
importance over a batch of prompts (``lmtt batch``): the share of prompts whose routes carry it,
and its mean contribution at the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

import torch
from jaxtyping import Float, Int

from lmtt.attention.head_names import BATCH_METRICS, METRICS, ON_RANDOM
from lmtt.attention.views import capture_attention
from lmtt.errors import LmttError
from lmtt.models.head_patterns import reference_pattern

PROMPT_TOKENS = 256  # a prompt's first tokens scored (at most the model's context)


class HeadCatalogueError(LmttError):
    """The head catalogue cannot be made from these prompts."""


@dataclass(frozen=True, eq=False)
class HeadCatalogue:
    """Every head's scores: ``metrics[name]`` [L, H], averaged over ``prompts`` (the random
    sequences for ``ON_RANDOM``); ``best_prompt[name]`` [L, H] indexes the prompt (or random
    sequence) where the head scores highest."""

    model: str
    prompts: tuple[str, ...]
    prompt_tokens: tuple[tuple[int, ...], ...]  # each prompt's ids, cut to PROMPT_TOKENS
    random_sequences: Int[torch.Tensor, "R T"]
    metrics: MappingProxyType
    best_prompt: MappingProxyType

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.metrics[METRICS[0]].shape)

    @property
    def names(self) -> tuple[str, ...]:
        """The metrics held: METRICS, then a batch's (``with_batch``) if added."""
        return tuple(self.metrics)

    def with_batch(self, summary) -> HeadCatalogue:
        """The catalogue plus each head's route importance over a batch (``summary``: rows
        of layer, head, route_share, mean_contribution, as ``BatchResults.head_summary``)."""
        L, H = self.shape
        added = {m: torch.full((L, H), float("nan")) for m in BATCH_METRICS}
        for row in summary.itertuples(index=False):
            if row.layer < L and row.head < H:
                for m in BATCH_METRICS:
                    added[m][row.layer, row.head] = float(getattr(row, m))
        best = {**self.best_prompt, **{m: torch.zeros(L, H, dtype=torch.long) for m in added}}
        return replace(self, metrics=MappingProxyType({**self.metrics, **added}),
                       best_prompt=MappingProxyType(best))  # fmt: skip

    def rows(self) -> list[dict]:
        """One row per head: layer, head, name ("L1H3") and every metric."""
        L, H = self.shape
        values = {m: self.metrics[m].tolist() for m in self.names}
        return [{"layer": layer, "head": head, "name": f"L{layer}H{head}",
                 **{m: values[m][layer][head] for m in self.names}}
                for layer in range(L) for head in range(H)]  # fmt: skip

    def top(self, metric: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The ``k`` heads highest on ``metric`` (lowest for entropy): (layer, head, value)."""
        if metric not in self.metrics:
            known = ", ".join(self.names)
            raise HeadCatalogueError(f"Unknown metric {metric!r}: use one of {known}.")
        flat = self.metrics[metric].flatten()
        highest = metric != "entropy"
        missing = float("-inf") if highest else float("inf")  # heads a batch never saw: last
        order = flat.nan_to_num(nan=missing).argsort(descending=highest)
        order = [i for i in order[:k].tolist() if flat[i] == flat[i]]
        H = self.shape[1]
        return [(i // H, i % H, float(flat[i])) for i in order]


def _scores(pattern: Float[torch.Tensor, "H T T"], tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of one layer's heads on one sequence: name -> [H]."""
    out = {}
    for kind in ("previous_token", "duplicate_token", "induction"):
        reference = reference_pattern(kind, tokens)
        out[kind] = (pattern * reference).sum((1, 2)) / pattern.sum((1, 2))
    rows = pattern[:, 1:]  # queries after the first (the first can only attend to itself)
    out["first_token"] = rows[:, :, 0].mean(1)
    plogp = torch.where(rows > 0, rows * torch.log2(rows.clamp_min(1e-30)), 0.0)
    out["entropy"] = -plogp.sum(-1).mean(1)
    return out


def repeated_random_tokens(model, n: int = 4, length: int = 24, seed: int = 0) -> torch.Tensor:
    """``n`` sequences of ``length`` random tokens, each followed by itself again [n, 2 length]
    (ids from the middle of the vocabulary: no special tokens)."""
    V = model.dims.d_vocab
    low, high = min(V - 1, max(1, V // 10)), max(2, V - V // 10)
    gen = torch.Generator().manual_seed(seed)
    first = torch.randint(low, high, (n, length), generator=gen)
    return torch.cat([first, first], dim=1)


def _sequence_scores(model, sequences: Sequence) -> dict[str, torch.Tensor]:
    """name -> [N, L, H] over the sequences (texts or id tensors)."""
    per: dict[str, list] = {m: [] for m in METRICS}
    for seq in sequences:
        trace = capture_attention(model, seq)
        layers = [_scores(trace.pattern(layer), trace.tokens) for layer in range(trace.n_layers)]
        for m in METRICS:
            per[m].append(torch.stack([scores[m] for scores in layers]))
    return {m: torch.stack(v) for m, v in per.items()}


def head_catalogue(
    model, prompts: Sequence[str], n_random: int = 4, length: int = 24, sequences=None
) -> HeadCatalogue:
    """The catalogue of ``model``'s heads over ``prompts`` (previous token, first token and
    entropy) and ``n_random`` repeated random sequences of ``length`` tokens (induction and
    duplicate token), or the token id ``sequences`` [N, T] given instead."""
    prompts = tuple(p for p in prompts if p.strip())
    if not prompts:
        raise HeadCatalogueError("No prompt to score the heads on: pass at least one prompt.")
    if sequences is None and 2 * length > model.dims.n_ctx:
        raise HeadCatalogueError(
            f"Repeated sequences of {length} tokens need {2 * length} positions; the model takes "
            f"{model.dims.n_ctx}. Use a shorter length."
        )
    if sequences is None:
        random = repeated_random_tokens(model, n_random, length)
    else:
        random = torch.as_tensor(sequences, dtype=torch.long).reshape(len(sequences), -1)
    limit = min(PROMPT_TOKENS, model.dims.n_ctx)
    kept = [(p, tuple(model.encode(p)[:limit].tolist())) for p in prompts]
    kept = [(p, t) for p, t in kept if len(t) >= 2]  # one token attends only to itself
    if not kept:
        raise HeadCatalogueError("Every prompt is one token: pass prompts of 2 tokens or more.")
    prompts, tokens = tuple(p for p, _ in kept), tuple(t for _, t in kept)
    on_prompts = _sequence_scores(model, [torch.tensor(t) for t in tokens])
    on_random = _sequence_scores(model, list(random))
    metrics, best = {}, {}
    for m in METRICS:
        values = on_random[m] if m in ON_RANDOM else on_prompts[m]
        metrics[m] = values.mean(0)
        best[m] = values.argmin(0) if m == "entropy" else values.argmax(0)
    return HeadCatalogue(model.name, prompts, tokens, random, MappingProxyType(metrics),
                         MappingProxyType(best))  # fmt: skip
