"""The query-key map of one head over a corpus (AttentionViz): stream documents until
``max_tokens`` tokens, capture only that layer, normalise and project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lmtt.attention import QueryKeyMap, query_key_map
from lmtt.attention_trace import AttentionViewError, capture_attention
from lmtt.corpus import read_corpus


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
    if not 0 <= layer < model.dims.n_layers:
        raise AttentionViewError(f"Layer {layer} is out of range: 0..{model.dims.n_layers - 1}.")
    if not 0 <= head < model.dims.n_heads:
        raise AttentionViewError(f"Head {head} is out of range: 0..{model.dims.n_heads - 1}.")
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
    m = query_key_map(traces, texts, 0, layer, head, method)
    return CorpusMap(m, len(traces), n, skipped)
