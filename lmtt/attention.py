"""Numbers behind the attention views: q.k breakdown and the query-key map (pure analysis).

The head view and model view draw ``AttentionTrace.patterns`` directly.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from lmtt.attention_trace import AttentionTrace, AttentionViewError


@dataclass(frozen=True)
class QKBreakdown:
    """Why one head at one query attends where it does (BertViz's neuron view)."""

    layer: int
    head: int
    query_pos: int
    tokens: tuple[str, ...]
    query: torch.Tensor  # [dh] (rotated for rotary models)
    keys: torch.Tensor  # [T, dh]
    products: torch.Tensor  # [T, dh] query * key, elementwise
    dots: torch.Tensor  # [T] products summed: q . k
    scores: torch.Tensor  # [T] q . k / sqrt(dh); -inf where the query may not attend
    weights: torch.Tensor  # [T] softmax(scores): the attention pattern row


def qk_breakdown(at: AttentionTrace, layer: int, head: int, query: int) -> QKBreakdown:
    at.check(layer, head, query)
    q = at.queries[layer, query, head]  # [dh]
    keys = at.keys[layer, :, head]  # [T, dh]
    products = keys * q
    dots = products.sum(dim=-1)
    scores = (dots * at.scale).masked_fill(~at.key_mask()[query], float("-inf"))
    return QKBreakdown(
        layer, head, query, at.token_strs, q, keys, products, dots, scores, scores.softmax(-1)
    )


METHODS = ("pca", "tsne", "umap")


@dataclass(frozen=True)
class QueryKeyMap:
    """Queries and keys of many prompts for one head in one 2-D space (AttentionViz)."""

    layer: int
    head: int
    method: str
    points: torch.Tensor  # [2N, 2]: the N queries, then the N keys
    kind: tuple[str, ...]  # "query" or "key"
    position: tuple[int, ...]
    token: tuple[str, ...]
    sentence: tuple[int, ...]  # index into sentences
    sentences: tuple[str, ...]


def available_methods() -> list[str]:
    have = {"tsne": "sklearn", "umap": "umap"}
    return [m for m in METHODS if m == "pca" or importlib.util.find_spec(have[m]) is not None]


def normalise_qk(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate the keys so their centroid is the queries', then scale queries by c and keys
    by 1/c so both have the same mean norm. Neither step changes any softmax: a shared key
    offset adds the same amount to all of a query's scores, and c * 1/c = 1."""
    k = k - k.mean(dim=0) + q.mean(dim=0)
    c = (k.norm(dim=-1).mean() / q.norm(dim=-1).mean().clamp_min(1e-12)).sqrt()
    return q * c, k / c


def project_2d(x: torch.Tensor, method: str = "pca", seed: int = 0) -> torch.Tensor:
    """[n, d] -> [n, 2] by PCA (default), t-SNE (scikit-learn) or UMAP (umap-learn)."""
    if method not in METHODS:
        raise AttentionViewError(f"Unknown projection {method!r}: use one of {', '.join(METHODS)}.")
    if method not in available_methods():
        package = {"tsne": "scikit-learn", "umap": "umap-learn"}[method]
        raise AttentionViewError(f"{method} needs {package}: pip install {package}.")
    x = x.double()
    if method == "pca":
        centred = x - x.mean(dim=0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        out = centred @ v[:2].T
        return torch.nn.functional.pad(out, (0, 2 - out.shape[1])).float()
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
        tsne = TSNE(2, perplexity=perplexity, init="pca", random_state=seed)
        return torch.from_numpy(tsne.fit_transform(x.numpy())).float()
    import umap

    return torch.from_numpy(umap.UMAP(random_state=seed).fit_transform(x.numpy())).float()


def query_key_map(
    traces: list[AttentionTrace],
    sentences: list[str],
    layer_index: int,
    layer: int,
    head: int,
    method: str = "pca",
) -> QueryKeyMap:
    """Map one head's queries and keys from traces (captured with layers=[layer] or all:
    ``layer_index`` is the layer's index inside each trace)."""
    qs, ks, pos, tok, sent = [], [], [], [], []
    for i, at in enumerate(traces):
        at.check(layer_index, head)
        qs.append(at.queries[layer_index, :, head])
        ks.append(at.keys[layer_index, :, head])
        pos.extend(range(at.n_tokens))
        tok.extend(at.token_strs)
        sent.extend([i] * at.n_tokens)
    if not qs:
        raise AttentionViewError("The query-key map needs at least one prompt.")
    q, k = normalise_qk(torch.cat(qs), torch.cat(ks))
    n = len(q)
    points = project_2d(torch.cat([q, k]), method)
    return QueryKeyMap(
        layer,
        head,
        method,
        points,
        ("query",) * n + ("key",) * n,
        tuple(pos) * 2,
        tuple(tok) * 2,
        tuple(sent) * 2,
        tuple(sentences),
    )
