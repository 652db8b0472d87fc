"""``lmtt models``: the models offered by name, and where their weights come from."""

from __future__ import annotations

from lmtt.cli import common


def cmd_models(args) -> int:
    from rich.table import Table

    from lmtt.models.catalog import load_model_catalog

    if args.families:
        return _families(args.markdown)
    catalog = load_model_catalog()
    table = Table(title="Models offered by name (configs/models.yaml)")
    for col in ("name", "weights", "description"):
        table.add_column(col)
    for m in catalog.models:
        default = " (default)" if m.name == catalog.default else ""
        table.add_row(m.name + default, m.availability(), m.description)
    common.console().print(table)
    print("Any hub name or local Hugging Face folder works too: lmtt ... --model NAME_OR_FOLDER")
    return 0


def _families(markdown: bool) -> int:
    """The support matrix: every family lmtt knows and what it does with it."""
    from rich.table import Table

    from lmtt.models.families import support_matrix

    rows = support_matrix()
    if markdown:
        print(family_table_markdown(rows))
        return 0
    table = Table(title="Model families (the records in lmtt/models/families)")
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    common.console().print(table)
    return 0


def family_table_markdown(rows: list[dict[str, str]]) -> str:
    header = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0])
    return "\n".join([header, *("| " + " | ".join(r.values()) + " |" for r in rows)])


def add_commands(sub) -> None:
    help = "the models offered by name, and where their weights are"
    p = common.command(sub, "models", help, cmd_models, model=False)
    p.add_argument("--families", action="store_true", help="the model families supported")
    p.add_argument("--markdown", action="store_true", help="with --families: a Markdown table")
