"""Plain text tables that fit a terminal without cutting a figure.

An admin reads when, which instance, status and the byte figures; those columns
are never cut. To fit a narrow terminal the table first drops its less
important columns (highest ``drop_order`` first), then narrows the gaps between
columns, then uses each column's compact form (a shorter date). Only if even
that is too wide may a column marked ``fold`` wrap. Off a terminal (a pipe, a
file) or with ``--wide`` every column is kept at its natural width.
"""
from __future__ import annotations

import io
import shutil
import sys
from dataclasses import dataclass
from typing import Callable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

_NATURAL_MAX = 400


@dataclass(frozen=True)
class Column:
    title: str
    right: bool = False                       # numbers: right-justified
    drop_order: int = 0                       # 0: always shown; higher: dropped earlier
    compact: Callable[[str], str] | None = None
    fold: bool = False                        # may wrap as a last resort (free text, very long names)


def terminal_width() -> int | None:
    """The terminal's width when stdout is one, else None (keep natural width)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _table(title: str | None, columns: list[Column], rows: list[list[str]], keep: list[int], *, gap: int,
           compact: bool, fold: bool) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, gap, 0, 0),
                  show_edge=False)
    for i in keep:
        col = columns[i]
        table.add_column(col.title, justify="right" if col.right else "left",
                         no_wrap=not (fold and col.fold), overflow="fold")
    for row in rows:
        cells = []
        for i in keep:
            value = row[i]
            if compact and columns[i].compact is not None:
                value = columns[i].compact(value)
            cells.append(Text(value))  # Text, not str: "[...]" in an error is data, not markup
        table.add_row(*cells)
    return table


def fit_table(title: str | None, columns: list[Column], rows: list[list[str]],
              width: int | None) -> tuple[str, list[str]]:
    """(the rendered table, titles of the columns left out). ``width`` None: every column, natural width."""
    keep = list(range(len(columns)))
    console = Console(file=io.StringIO(), width=_NATURAL_MAX, color_system=None, force_terminal=False,
                      highlight=False, emoji=False, markup=False)

    def measure(table: Table) -> int:
        return console.measure(table).maximum

    settings = {"gap": 1, "compact": False, "fold": False}
    table = _table(title, columns, rows, keep, **settings)
    if width is not None:
        droppable = sorted((i for i, c in enumerate(columns) if c.drop_order), key=lambda i: -columns[i].drop_order)
        while measure(table) > width and droppable:
            keep.remove(droppable.pop(0))
            table = _table(title, columns, rows, keep, **settings)
        for step in ({"gap": 0}, {"compact": True}, {"fold": True}):
            if measure(table) <= width:
                break
            settings.update(step)
            table = _table(title, columns, rows, keep, **settings)
    render_width = min(measure(table), _NATURAL_MAX) if width is None else min(width, _NATURAL_MAX)
    buffer = io.StringIO()
    Console(file=buffer, width=max(render_width, 20), color_system=None, force_terminal=False,
            highlight=False, emoji=False, markup=False).print(table)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
    return text, [columns[i].title for i in range(len(columns)) if i not in keep]
