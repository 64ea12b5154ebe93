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
from rich.cells import cell_len
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


def _cells(text: str) -> int:
    """Terminal cells ``text`` takes (a wide character takes two)."""
    return len(text) if text.isascii() else cell_len(text)


class _Widths:
    """Each column's natural width (its widest line, title included), plain and compact: what rich
    measures, without building a rich table per try (rich takes seconds per thousand rows)."""

    def __init__(self, columns: list[Column], rows: list[list[str]]):
        self.ascii = "".join(cell for row in rows for cell in row).isascii()   # one cell per character
        self.multiline = any("\n" in cell for row in rows for cell in row)
        self.plain = [self._widest([col.title] + [row[i] for row in rows]) for i, col in enumerate(columns)]
        self.compact = [self._widest([col.title] + [col.compact(row[i]) for row in rows]) if col.compact
                        else self.plain[i] for i, col in enumerate(columns)]

    def _widest(self, cells: list[str]) -> int:
        if self.ascii and not self.multiline:
            return max(map(len, cells))
        return max(_cells(line) for cell in cells for line in (cell.split("\n") if "\n" in cell else (cell,)))

    def table(self, keep: list[int], *, gap: int, compact: bool, fold: bool) -> int:
        """The table's width: columns, and between two columns the padding (gap) and a one-space rule
        (no padding at the edges)."""
        widths = self.compact if compact else self.plain
        return min(sum(widths[i] for i in keep) + (gap + 1) * (len(keep) - 1), _NATURAL_MAX)


def _plain_render(title: str | None, columns: list[Column], rows: list[list[str]], keep: list[int],
                  natural: _Widths, gap: int, compact: bool) -> str:
    """What rich prints for a table of one-line cells that fit (SIMPLE_HEAD, no edge), built directly."""
    widths = natural.compact if compact else natural.plain
    between = " " * gap + " "

    def line(cells: list[str]) -> str:
        if natural.ascii:
            parts = [cell.rjust(widths[i]) if columns[i].right else cell.ljust(widths[i])
                     for i, cell in zip(keep, cells)]
        else:
            parts = []
            for i, cell in zip(keep, cells):
                pad = " " * (widths[i] - _cells(cell))
                parts.append(pad + cell if columns[i].right else cell + pad)
        return between.join(parts).rstrip()

    def shown(row: list[str]) -> list[str]:
        return [columns[i].compact(row[i]) if compact and columns[i].compact else row[i] for i in keep]

    total = sum(widths[i] for i in keep) + (gap + 1) * (len(keep) - 1)
    out = []
    if title:
        buffer = io.StringIO()
        Console(file=buffer, width=max(total, 20), color_system=None, force_terminal=False, highlight=False,
                emoji=False, markup=False).print(Text(title, justify="left"))
        out += [text.rstrip() for text in buffer.getvalue().splitlines()]
    out += [line([columns[i].title for i in keep]), "\u2500" * total]
    out += [line(shown(row)) for row in rows]
    return "\n".join(out)


def _plain_fits(natural: _Widths, measured: int, render_width: int) -> bool:
    """True when every cell stays on one line: the table is built directly, not by rich."""
    return not natural.multiline and measured < _NATURAL_MAX and measured <= render_width


def fit_table(title: str | None, columns: list[Column], rows: list[list[str]],
              width: int | None) -> tuple[str, list[str]]:
    """(the rendered table, titles of the columns left out). ``width`` None: every column, natural width."""
    keep = list(range(len(columns)))
    natural = _Widths(columns, rows)
    settings = {"gap": 1, "compact": False, "fold": False}
    if width is not None:
        droppable = sorted((i for i, c in enumerate(columns) if c.drop_order), key=lambda i: -columns[i].drop_order)
        while natural.table(keep, **settings) > width and droppable:
            keep.remove(droppable.pop(0))
        for step in ({"gap": 0}, {"compact": True}, {"fold": True}):
            if natural.table(keep, **settings) <= width:
                break
            settings.update(step)
    dropped = [columns[i].title for i in range(len(columns)) if i not in keep]
    measured = natural.table(keep, **settings)
    render_width = measured if width is None else min(width, _NATURAL_MAX)
    if _plain_fits(natural, measured, render_width):
        return _plain_render(title, columns, rows, keep, natural, settings["gap"], settings["compact"]), dropped
    # cells that must wrap or fold: rich lays them out
    table = _table(title, columns, rows, keep, **settings)
    buffer = io.StringIO()
    Console(file=buffer, width=max(render_width, 20), color_system=None, force_terminal=False,
            highlight=False, emoji=False, markup=False).print(table)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
    return text, dropped
