"""A GPT-2 built by hand with a known circuit, for tests of causal evidence.

``make_induction_circuit(folder)`` writes a 2-layer GPT-2 whose weights are set explicitly:

- layer 0, head 0: a **previous-token head**; at position p it attends to p - 1 and writes
  that token's identity into a "previous token" subspace;
- layer 0, head 1: a **dead head**; it attends uniformly and writes into a subspace that no
  later head and not the unembedding reads;
- layer 1, head 0: an **induction head**; its query is the current token, its key the
  previous-token subspace (K-composition with L0H0), its value the token, written (x5) where
  the unembedding reads it;
- every other head and both MLPs are zero.

On ``INDUCTION_PROMPT`` (token ids <bos> A B C D A; <bos> embeds to zero, so the first
position writes no previous token) the last position attends to position 2 (the token after
the earlier A) and predicts B. Every symbol is encoded with zero mean (+1 on its
dimension, -1 on a shared ballast dimension) and the LayerNorms have a huge epsilon and a
matching gain, so each norm is the identity to float precision and the circuit is exact.
"""

from __future__ import annotations

from pathlib import Path

import torch

D, HEADS, D_HEAD, N_CTX = 32, 4, 8, 8
TOK, POS, PREV, DEAD, BALLAST = 0, 8, 16, 24, 31  # first dimension of each subspace
INDUCTION_PROMPT = (0, 1, 2, 3, 4, 1)  # <bos> A B C D A -> B (<bos> embeds to zero)
ANSWER = 2
BETA = 30 * D_HEAD**0.5  # hard attention: matching scores are 30 above the rest
COPY = 5.0
EPS = 1e8


def _symbol(dim: int, scale: float = 1.0) -> torch.Tensor:
    v = torch.zeros(D)
    v[dim], v[BALLAST] = scale, -scale
    return v


def _set_circuit(model) -> None:
    t = model.transformer
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for tok in range(1, 9):  # ids 1..8 carry the circuit; the rest embed to zero
            t.wte.weight[tok] = _symbol(TOK + tok - 1)
        for pos in range(N_CTX):
            t.wpe.weight[pos] = _symbol(POS + pos)
        for ln in [t.ln_f] + [b.ln_1 for b in t.h] + [b.ln_2 for b in t.h]:
            ln.weight.fill_(EPS**0.5)  # (x - mean) / sqrt(var + eps) * sqrt(eps) = x
        _layer0(t.h[0].attn)
        _layer1(t.h[1].attn)


def _layer0(attn) -> None:
    W, W_O = attn.c_attn.weight, attn.c_proj.weight  # x @ W: columns Q | K | V, head-major
    for p in range(1, N_CTX):  # head 0: query at p is position p - 1, key at j is j
        W[POS + p, p - 1] = BETA
    for j in range(N_CTX):
        W[POS + j, D + j] = 1.0
    for c in range(8):
        W[TOK + c, 2 * D + c] = 1.0  # head 0 value: the token
        W_O[c] = _symbol(PREV + c)  # written as "previous token"
        W[TOK + c, 2 * D + D_HEAD + c] = 1.0  # head 1 value: the token (uniform attention)
        W_O[D_HEAD + c] = _symbol(DEAD + c % 4)  # written where nothing reads


def _layer1(attn) -> None:
    W, W_O = attn.c_attn.weight, attn.c_proj.weight
    for c in range(8):
        W[TOK + c, c] = BETA  # query: the current token
        W[PREV + c, D + c] = 1.0  # key: the previous token written by L0H0
        W[TOK + c, 2 * D + c] = 1.0  # value: the token
        W_O[c] = _symbol(TOK + c, COPY)  # copied where the unembedding reads


def make_induction_circuit(folder: str | Path) -> Path:
    """Write the hand-built induction circuit (module docstring) as a GPT-2 folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmtt.testing import _tokenizer

    folder = Path(folder)
    tokenizer = _tokenizer(300)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=N_CTX, n_embd=D, n_layer=2, n_head=HEADS,
        layer_norm_epsilon=EPS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    _set_circuit(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_balanced_model(folder: str | Path) -> Path:
    """Write a 1-layer GPT-2 whose prediction has two parts of exactly equal weight: its
    attention writes nothing, and its MLP writes a copy of the token's symbol on other
    dimensions (+1 and -1, as much as the residual holds), so the residual and the MLP each
    make 0.5 of the last block's output and no route survives a threshold of 0.5."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from lmtt.testing import _tokenizer

    folder = Path(folder)
    tokenizer = _tokenizer(300)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=N_CTX * 2, n_embd=D, n_layer=1, n_head=HEADS,
        layer_norm_epsilon=EPS, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    t = model.transformer
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for tok in range(len(tokenizer)):
            t.wte.weight[tok] = _symbol(TOK + tok % 8)
        for ln in (t.ln_f, t.h[0].ln_1, t.h[0].ln_2):
            ln.weight.fill_(EPS**0.5)  # the identity, as above
        mlp = t.h[0].mlp
        for c in range(8):  # hidden unit c fires 8 (GELU(8) = 8) on the symbol TOK + c ...
            mlp.c_fc.weight[TOK + c, c] = 8.0
            mlp.c_proj.weight[c, PREV + c] = 0.125  # ... and writes +1 on PREV + c, -1 on 30
            mlp.c_proj.weight[c, BALLAST - 1] = -0.125
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
