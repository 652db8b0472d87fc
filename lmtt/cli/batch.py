"""``lmtt batch``: routes, head and neuron contributions for a file of prompts;
``lmtt batch-query``: SQL over a batch folder (DuckDB)."""

from __future__ import annotations

from lmtt.cli import common
from lmtt.cli.neurons import _parse_shard


def cmd_batch(args) -> int:
    from lmtt.corpus.prompt_files import read_prompt_file
    from lmtt.index.batch import BatchSettings, run_batch

    read_prompt_file(args.prompts)  # a bad file is refused before the model loads
    out = common.output_folder(args.out)
    model = common.load(args)
    settings = BatchSettings(args.threshold, args.batch_size, args.top_neurons, args.verify)
    if args.ray:
        from lmtt.index.batch import run_batch_on_ray

        run_batch_on_ray(args.model or model.name, args.prompts, out, settings, args.ray,
                         device=model.device, address=args.ray_address)  # fmt: skip
        common.console().print(f"batch done in {out} ({args.ray} Ray shards)")
        return 0
    run_batch(model, args.prompts, out, settings, args.shard, progress=not args.quiet)
    i, n = args.shard
    shard = "" if n == 1 else f" (shard {i}/{n})"
    common.console().print(f"batch{shard} done in {out}; query it with `lmtt batch-query {out}`")
    return 0


def cmd_batch_query(args) -> int:
    from lmtt.index.batch_store import open_batch

    results = open_batch(args.folder)
    frame = results.sql(args.sql) if args.sql else results.head_summary()
    common.print_frame(frame.head(args.limit))
    return 0


def add_commands(sub) -> None:
    p = common.command(sub, "batch", "routes and head/neuron contributions for a prompt file",
                       cmd_batch)  # fmt: skip
    p.add_argument("--prompts", required=True, metavar="FILE",
                   help=".txt (one prompt a line), or .jsonl/.csv with 'prompt' and optional "
                   "'target', 'foil', 'counterfactual'")  # fmt: skip
    p.add_argument("--out", required=True, help="the batch folder (resumable)")
    p.add_argument("--threshold", type=common.real(0, 1, high_open=True), default=0.04)
    p.add_argument("--batch-size", type=common.count(1), default=8,
                   help="prompts per forward pass")  # fmt: skip
    p.add_argument("--top-neurons", type=common.count(1), default=16,
                   help="neurons kept per MLP and prompt")  # fmt: skip
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="run shard i of n (i/n)")
    verify = "also knock out every edge and measure the routes' completeness"
    p.add_argument("--verify", action="store_true", help=verify)
    p.add_argument("--ray", type=common.count(1), default=None, metavar="N",
                   help="run N shards as Ray tasks into --out")  # fmt: skip
    p.add_argument("--ray-address", default=None, help="a Ray cluster (default: local)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = common.command(sub, "batch-query", "SQL over a batch folder (default: per-head summary)",
                       cmd_batch_query, model=False)  # fmt: skip
    p.add_argument("folder")
    p.add_argument("sql", nargs="?", default=None,
                   help="a DuckDB query over prompts, edges, heads, neurons, diffs")  # fmt: skip
    p.add_argument("--limit", type=common.count(1), default=20, help="rows printed")
