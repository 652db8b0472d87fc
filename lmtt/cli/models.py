"""``lmtt models``: the models offered by name, and where their weights come from."""

from __future__ import annotations

from lmtt.cli import common


def cmd_models(args) -> int:
    from rich.table import Table

    from lmtt.models.catalog import load_model_catalog

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


def add_commands(sub) -> None:
    help = "the models offered by name, and where their weights are"
    common.command(sub, "models", help, cmd_models, model=False)
