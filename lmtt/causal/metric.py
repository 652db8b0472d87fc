"""What an intervention changes: log p(target), logit(target), or logit(target) - logit(foil),
read at one position of the logits."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from jaxtyping import Float

from lmtt.errors import InterventionError, check_index

KINDS = ("logprob", "logit", "contrast")
MAX_CAUSAL_TOKENS = 1024  # causal work holds [L, H, T, T] tensors: longer prompts are refused


def check_length(n_tokens: int, what: str) -> None:
    """Refuse causal work (``what``, e.g. "The knockout score") on a prompt longer than
    MAX_CAUSAL_TOKENS, in one line: its gradients and sweeps hold [layers, heads, T, T]
    tensors and a forward pass per removal."""
    limit = MAX_CAUSAL_TOKENS
    if n_tokens > limit:
        raise InterventionError(
            f"{what} is for prompts of at most {limit:,} tokens (this one has {n_tokens:,}): "
            "use the proximity or read routes for long prompts."
        )


@dataclass(frozen=True)
class Metric:
    """A scalar of the output at ``position``: ``logprob`` = log p(target), ``logit`` =
    logit(target), ``contrast`` = logit(target) - logit(foil) (what makes target beat foil)."""

    kind: str
    position: int
    target: int  # token id
    foil: int | None = None

    def __call__(self, logits: Float[torch.Tensor, "B T V"]) -> Float[torch.Tensor, " B"]:
        row = logits[:, self.position]
        if self.kind == "logprob":
            return row.log_softmax(-1)[:, self.target]
        if self.kind == "logit":
            return row[:, self.target]
        return row[:, self.target] - row[:, self.foil]

    def at_first(self, logits: Float[torch.Tensor, "B P V"]) -> Float[torch.Tensor, " B"]:
        """The metric of logits whose first position is this metric's (sliced logits)."""
        return replace(self, position=0)(logits)

    def describe(self, vocab) -> str:
        t = repr(vocab[self.target])
        if self.kind == "contrast":
            return f"logit({t}) - logit({vocab[self.foil]!r}) at position {self.position}"
        name = "log p" if self.kind == "logprob" else "logit"
        return f"{name}({t}) at position {self.position}"

    def to_json(self, vocab=None) -> dict:
        d = {"kind": self.kind, "position": self.position, "target": self.target}
        if self.foil is not None:
            d["foil"] = self.foil
        if vocab is not None:
            d["text"] = self.describe(vocab)
        return d


def token_id(model, token: str | int, what: str) -> int:
    """A token id from an id or a string that is exactly one token (a leading space counts)."""
    if isinstance(token, int):
        return check_index(f"{what} token id", token, model.dims.d_vocab)
    ids = model.tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = model.token_strings(ids)
        raise InterventionError(
            f"The {what} {token!r} is {len(ids)} tokens ({pieces}); give one token (e.g. "
            f"{pieces[0]!r} if any) or its id."
        )
    return int(ids[0])


def make_metric(
    model,
    trace,
    kind: str = "logprob",
    target: str | int | None = None,
    foil: str | int | None = None,
    position: int | None = None,
) -> Metric:
    """The metric at ``position`` (default: the trace's default target) of ``target`` (default:
    the model's top prediction there); a ``foil`` makes it the contrast."""
    if foil is not None:
        kind = "contrast"
    if kind not in KINDS:
        raise InterventionError(f"Unknown metric {kind!r}: use one of {', '.join(KINDS)}.")
    if kind == "contrast" and foil is None:
        raise InterventionError("The contrast metric needs a foil token (--foil).")
    pos = trace.default_target() if position is None else position
    pos = check_index("Metric position", pos, trace.n_tokens, negative=True)
    logits = trace.all_logits()  # every measure compares with them
    tid = int(logits[pos].argmax()) if target is None else token_id(model, target, "target")
    fid = None if foil is None else token_id(model, foil, "foil")
    if fid == tid:
        raise InterventionError("The foil is the target token: pick a different foil.")
    return Metric(kind, pos, tid, fid)
