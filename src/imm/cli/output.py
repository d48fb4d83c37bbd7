"""Rendering for read commands: a rich table for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)


def show(data: Any, output: Output, columns: Sequence[str] | None = None) -> None:
    if output is Output.json:
        print(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    if not isinstance(data, list) and columns is None:
        table = Table(show_header=False, box=None)
        for key, value in data.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(value))
        console.print(table)
        return
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(*cols)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    console.print(table)
