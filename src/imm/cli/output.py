"""Rendering for read commands: a rich table for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
errors = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


def _cell(value: Any) -> str:
    """Text as it is: rich would read ``[b'x', ...]`` or ``[/path]`` in a value as markup."""
    if isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "-"
    else:
        text = "-" if value is None else str(value)
    return escape(text)


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: text for bytes (e.g. string tensors), else str."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def show(
    data: Any, output: Output, columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    """A list as a table of ``columns`` (default: the first row's keys); a dict as a
    two-column key/value table, or as one row when ``columns`` is given."""
    if output is Output.json:
        print(json.dumps(data, indent=2, default=_plain))
        return
    rows = data if isinstance(data, list) else [data]
    if not isinstance(data, list) and columns is None:
        table = Table(show_header=False, box=None, title=title)
        for key, value in data.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(value))
        console.print(table)
        return
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(*cols, title=title)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console.print(table)
