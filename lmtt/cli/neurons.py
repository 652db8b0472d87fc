"""``lmtt index-neurons``, ``lmtt merge-index`` and ``lmtt neuron``: the neuron index commands."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from lmtt.cli import common
from lmtt.errors import LmttError


def _folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def _parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/4, not {text!r}")
    return int(match[1]), int(match[2])


def cmd_index_neurons(args) -> int:
    from lmtt.index.neuron_index import IndexSettings, index_neurons

    common.output_folder(args.out)
    console = common.console()
    model = common.load(args)
    d = model.dims
    window = min(d.n_ctx, 128) if args.window is None else args.window
    settings = IndexSettings(
        model=model.name,
        corpus=str(args.corpus),
        n_layers=d.n_layers,
        d_mlp=d.d_mlp,
        top_k=args.top_k,
        window=window,
        batch_size=args.batch_size,
        chunk_windows=args.chunk_windows,
        context=args.context,
        max_tokens=args.max_tokens,
    )
    if window > d.n_ctx:
        raise LmttError(f"--window {window} is longer than the model's context ({d.n_ctx}).")
    if args.ray:
        from lmtt.index.ray_runner import run_on_ray

        folder = run_on_ray(
            model.name,
            args.corpus,
            args.out,
            settings,
            args.ray,
            device=model.device,
            address=args.ray_address,
        )
        console.print(
            f"index ready in {folder} ({_folder_mb(folder):.1f} MB), {args.ray} Ray shards"
        )
        return 0
    start = time.perf_counter()
    state = index_neurons(model, args.corpus, args.out, settings, args.shard, not args.quiet)
    seconds = time.perf_counter() - start
    i, n = args.shard
    console.print(
        f"indexed {state.tokens:,} tokens of {state.corpus_tokens:,} "
        f"({state.corpus_documents:,} documents, {state.chunks_total} chunks) in {seconds:.1f} s"
        + (f" ({state.tokens / seconds:,.0f} tokens/s)" if seconds > 0 else "")
    )
    if state.skipped_invalid_utf8:
        console.print(f"skipped {state.skipped_invalid_utf8} lines that are not valid UTF-8")
    if n == 1:
        console.print(f"index ready in {args.out} ({_folder_mb(Path(args.out)):.1f} MB)")
    else:
        console.print(
            f"shard {i}/{n} done in {args.out}; when all {n} shards are done run "
            f"`lmtt merge-index --out FINAL_DIR SHARD_DIRS...`"
        )
    return 0


def cmd_merge_index(args) -> int:
    from lmtt.index.neuron_merge import merge_index

    folder = merge_index(args.out, args.sources)
    common.console().print(f"merged index ready in {folder} ({_folder_mb(folder):.1f} MB)")
    return 0


def cmd_neuron(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from lmtt.index.neuron_store import open_index
    from lmtt.viz.text import token_label

    console = common.console()
    index = open_index(args.index)
    if args.token is not None:
        table = Table(title=f"Neurons whose top examples are '{token_label(args.token)}'")
        for col in ("layer", "neuron", "hits", "max activation"):
            table.add_column(col, justify="right")
        for row in index.neurons_for_token(args.token, args.k):
            table.add_row(
                str(row.layer), str(row.neuron), str(row.hits), f"{row.max_activation:.3f}"
            )
        console.print(table)
        return 0
    if args.layer is None or args.neuron is None:
        raise LmttError("Give a layer and a neuron (lmtt neuron --index DIR L N), or --token.")
    s = index.summary(args.layer, args.neuron)
    console.print(
        f"[bold]L{s.layer} N{s.neuron}[/] of {index.model}: max {s.max:.3f}, mean {s.mean:.3f}, "
        f"active on {s.fraction_active:.1%} of {s.count:,} tokens"
    )
    tags = index.upos_histogram(args.layer, args.neuron)
    if tags:
        console.print("UPOS of top examples: " + ", ".join(f"{t} {c}" for t, c in tags.items()))
    table = Table(title="Top-activating examples (firing token marked »like this«)")
    table.add_column("#", justify="right")
    table.add_column("activation", justify="right")
    table.add_column("document", overflow="fold", max_width=22)
    table.add_column("context", overflow="fold")
    for ex in index.top_examples(args.layer, args.neuron, args.k, args.context):
        context = (
            escape(ex.left.replace("\n", "⏎"))
            + f"[bold reverse]»{escape(ex.token.replace(chr(10), '⏎'))}«[/]"
            + escape(ex.right.replace("\n", "⏎"))
        )
        table.add_row(
            str(ex.rank + 1), f"{ex.activation:.3f}", f"{ex.doc_id}@{ex.position}", context
        )
    console.print(table)
    return 0


def add_commands(sub) -> None:
    p = common.command(
        sub, "index-neurons", "top-activating corpus examples for every neuron", cmd_index_neurons
    )
    p.add_argument("--corpus", required=True, help=".txt, .jsonl, .conllu file or a folder")
    p.add_argument("--out", required=True, help="index folder (new, empty, or to resume)")
    p.add_argument("--max-tokens", type=common.count(1), default=None,
                   help="index only the first N tokens")  # fmt: skip
    p.add_argument("--top-k", type=common.count(1), default=20, help="examples kept per neuron")
    p.add_argument("--batch-size", type=common.count(1, 4096), default=8,
                   help="windows per forward pass")  # fmt: skip
    p.add_argument("--context", type=common.count(0, 10_000), default=64,
                   help="context tokens shown either side")  # fmt: skip
    p.add_argument("--window", type=common.count(2), default=None,
                   help="tokens per window (min(n_ctx,128))")  # fmt: skip
    p.add_argument("--chunk-windows", type=common.count(1), default=64,
                   help="windows per resumable chunk")  # fmt: skip
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="run shard i of n (i/n)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", type=common.count(0, 10_000), default=0, metavar="N",
                   help="run N shards as Ray tasks")  # fmt: skip
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: local)")

    p = common.command(
        sub, "merge-index", "merge the shards of an index into one", cmd_merge_index, model=False
    )
    p.add_argument("--out", required=True, help="folder for the merged index")
    p.add_argument("sources", nargs="+", help="folders holding the shards")

    p = common.command(
        sub, "neuron", "a neuron's top-activating examples from an index", cmd_neuron, model=False
    )
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("layer", type=common.count(0), nargs="?")
    p.add_argument("neuron", type=common.count(0), nargs="?")
    p.add_argument("--k", type=common.count(1, 100_000), default=10,
                   help="examples (or neurons) to show")  # fmt: skip
    p.add_argument("--context", type=common.count(0, 10_000), default=None,
                   help="tokens either side")  # fmt: skip
    p.add_argument("--token", default=None, help="list the neurons that fire on this token")
