"""Masked-LM prediction: the top fillers of every [MASK] of a prompt, from one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lmtt.errors import NoMlmHeadError, PromptError
from lmtt.models.trace import Trace, prepare_tokens, run_trace


@dataclass(frozen=True)
class MaskPrediction:
    position: int
    fillers: list[tuple[str, float]]  # (token, probability), best first


def require_mlm_head(model) -> None:
    """Raise :class:`NoMlmHeadError` unless the model was saved with its masked-LM head."""
    if not model.has_mlm_head:
        what = "a decoder" if not model.is_encoder else "an encoder saved without its MLM head"
        raise NoMlmHeadError(
            f"{model.name} has no masked-LM head ({what}), so it cannot fill in [MASK]. Use a "
            "model saved as *ForMaskedLM, e.g. bert-base-uncased."
        )


def check_masks(model, tokens: torch.Tensor) -> None:
    """Refuse a model without an MLM head, or tokens [T] without a mask token."""
    require_mlm_head(model)
    if not (tokens == model.tokenizer.mask_token_id).any():
        mask = model.tokenizer.mask_token
        raise PromptError(f"The prompt has no {mask} token: write {mask} where a word is missing.")


def predict_masks(model, text: str, k: int = 5) -> list[MaskPrediction]:
    """Top-k fillers for each mask token, all masks predicted in one pass."""
    tokens = prepare_tokens(model, text)
    check_masks(model, tokens)
    return predict_from_trace(model, run_trace(model, tokens, capture=()), k)


def predict_from_trace(model, trace: Trace, k: int = 5) -> list[MaskPrediction]:
    """Top-k fillers of every mask position from a trace already made (its logits are the
    masked-LM predictions): the attention views and the fillers share one forward pass."""
    check_masks(model, trace.tokens)
    out = []
    for pos in (trace.tokens == model.tokenizer.mask_token_id).nonzero().flatten().tolist():
        top = trace.logits[pos].softmax(-1).topk(k)
        fillers = [(model.vocab[int(i)].strip(), float(p)) for p, i in zip(*top, strict=True)]
        out.append(MaskPrediction(pos, fillers))
    return out


@dataclass(frozen=True)
class MaskedScore:
    """How well a masked LM fills held-out tokens: ``loss`` (nats) and ``accuracy`` of its
    top filler over ``masked`` masked tokens, whose true ids are ``labels`` [N]."""

    loss: float
    accuracy: float
    masked: int
    labels: torch.Tensor  # [N] true token ids of the masked positions


def masked_token_score(
    model, windows: list[torch.Tensor], rate: float = 0.15, seed: int = 0
) -> MaskedScore:
    """Mask ``rate`` of the non-special tokens of each window [T] (chosen with ``seed``, all
    replaced by the mask token), predict them and score the predictions."""
    require_mlm_head(model)
    gen = torch.Generator().manual_seed(seed)
    special = torch.tensor(sorted(model.tokenizer.all_special_ids))
    losses, hits, labels = [], [], []
    for window in windows:
        chosen = (torch.rand(window.shape, generator=gen) < rate) & ~torch.isin(window, special)
        if not chosen.any():
            continue
        masked = torch.where(chosen, model.tokenizer.mask_token_id, window)
        logits = run_trace(model, masked, capture=()).logits[chosen]
        losses.append(torch.nn.functional.cross_entropy(logits, window[chosen], reduction="sum"))
        hits.append((logits.argmax(-1) == window[chosen]).sum())
        labels.append(window[chosen])
    if not labels:
        raise PromptError("No token could be masked: give windows with ordinary tokens.")
    truth = torch.cat(labels)
    n = len(truth)
    return MaskedScore(float(sum(losses)) / n, float(sum(hits)) / n, n, truth)
