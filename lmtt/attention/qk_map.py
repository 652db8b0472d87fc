"""The query-key map (AttentionViz): one head's queries and keys of many prompts, or of a
corpus, in one 2-D space. For a corpus, documents stream until ``max_tokens`` tokens and only
that layer is captured."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float

from lmtt.attention.views import capture_attention, require_qk
from lmtt.corpus.readers import read_corpus
from lmtt.errors import AttentionViewError, check_index
from lmtt.models.trace import Trace

METHODS = ("pca", "tsne", "umap")


@dataclass(frozen=True)
class QueryKeyMap:
    """Queries and keys of many prompts for one head in one 2-D space."""

    layer: int
    head: int
    method: str
    points: Float[torch.Tensor, "2N 2"]  # the N queries, then the N keys
    kind: tuple[str, ...]  # "query" or "key"
    position: tuple[int, ...]
    token: tuple[str, ...]
    sentence: tuple[int, ...]  # index into sentences
    sentences: tuple[str, ...]


def available_methods() -> list[str]:
    have = {"tsne": "sklearn", "umap": "umap"}
    return [m for m in METHODS if m == "pca" or importlib.util.find_spec(have[m]) is not None]


def normalise_qk(
    q: Float[torch.Tensor, "N d"], k: Float[torch.Tensor, "N d"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate the keys so their centroid is the queries', then scale queries by c and keys
    by 1/c so both have the same mean norm. Neither step changes any softmax: a shared key
    offset adds the same amount to all of a query's scores, and c * 1/c = 1."""
    k = k - k.mean(dim=0) + q.mean(dim=0)
    c = (k.norm(dim=-1).mean() / q.norm(dim=-1).mean().clamp_min(1e-12)).sqrt()
    return q * c, k / c


def project_2d(
    x: Float[torch.Tensor, "n d"], method: str = "pca", seed: int = 0
) -> Float[torch.Tensor, "n 2"]:
    """Project by PCA (default), t-SNE (scikit-learn) or UMAP (umap-learn)."""
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
    traces: list[Trace], sentences: list[str], layer: int, head: int, method: str = "pca"
) -> QueryKeyMap:
    """Map one head's queries and keys from traces that hold ``layer``'s queries and keys."""
    qs, ks, pos, tok, sent = [], [], [], [], []
    for i, trace in enumerate(traces):
        require_qk(trace, "query-key map")
        trace.check(layer, head)
        qs.append(trace.queries(layer)[:, head])
        ks.append(trace.keys(layer)[:, head])
        pos.extend(range(trace.n_tokens))
        tok.extend(trace.token_strs)
        sent.extend([i] * trace.n_tokens)
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


@dataclass(frozen=True)
class CorpusMap:
    map: QueryKeyMap
    documents: int  # documents mapped
    tokens: int  # tokens mapped (each gives one query and one key point)
    skipped_long: int  # documents longer than the model's context, left out


def corpus_query_key_map(
    model,
    corpus: str | Path,
    layer: int,
    head: int,
    method: str = "pca",
    max_tokens: int = 2000,
    progress: bool = False,
) -> CorpusMap:
    """Queries and keys of the corpus's first documents (about ``max_tokens`` tokens)."""
    from tqdm.auto import tqdm

    if max_tokens < 1:
        raise AttentionViewError(f"max_tokens must be at least 1, not {max_tokens}.")
    check_index("Layer", layer, model.dims.n_layers)
    check_index("Head", head, model.dims.n_heads)
    traces, texts, n, skipped = [], [], 0, 0
    with tqdm(total=max_tokens, desc="query-key map", unit="tok", disable=not progress) as bar:
        for doc in read_corpus(corpus):
            tokens = model.encode(doc.text)
            if len(tokens) > model.dims.n_ctx:
                skipped += 1
                continue
            traces.append(capture_attention(model, tokens, layers=[layer]))
            texts.append(doc.text)
            n += len(tokens)
            bar.update(min(len(tokens), max_tokens - bar.n))
            if n >= max_tokens:
                break
    if not traces:
        raise AttentionViewError(
            f"{corpus} has no document that fits the model's context ({model.dims.n_ctx} tokens)."
        )
    m = query_key_map(traces, texts, layer, head, method)
    return CorpusMap(m, len(traces), n, skipped)
