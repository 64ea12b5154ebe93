"""Human reports as text: a rich table (plain, no colour codes) and Markdown."""

from __future__ import annotations

import io
import shutil
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gcops.report.rows import HUMAN_COLUMNS, human_figure, result_rows, status_text, totals_of, totals_line

_MIN_TABLE_WIDTH = 80
_MAX_TABLE_WIDTH = 400


def _table_width(natural: int) -> int:
    """Fit the terminal when printing to one; else (a file, a pipe) never cut a cell."""
    if sys.stdout.isatty():
        return max(shutil.get_terminal_size().columns, _MIN_TABLE_WIDTH)
    return max(min(natural, _MAX_TABLE_WIDTH), _MIN_TABLE_WIDTH)


def render_table(runs: list[dict]) -> str:
    """A box-drawn table, one row per (run, instance result), and a totals line."""
    table = Table(title="gcops: space reclaimed by registry garbage collection", title_justify="left")
    table.add_column("Started (UTC)", no_wrap=True)
    table.add_column("Instance", overflow="fold")
    table.add_column("Status", no_wrap=True)
    for title, _ in HUMAN_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    table.add_column("Error", overflow="fold")
    for row in result_rows(runs):
        # Text(), not str: a "[...]" in an error message is data, not rich markup.
        table.add_row(Text(row.started_at), Text(row.instance), Text(status_text(row)),
                      *(Text(human_figure(key, row.figure(key))) for _, key in HUMAN_COLUMNS),
                      Text(row.error))
    buffer = io.StringIO()
    console = Console(file=buffer, width=_MAX_TABLE_WIDTH, color_system=None, force_terminal=False,
                      highlight=False, emoji=False, markup=False)
    console.width = _table_width(console.measure(table).maximum)
    console.print(table)
    console.print(Text(totals_line(totals_of(runs))))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


_MARKDOWN_SPECIAL = set("\\`*_[]<>|~#")


def markdown_cell(value: str) -> str:
    """``value`` safe inside a GitHub-flavoured Markdown table cell (one line, escaped)."""
    value = " ".join(value.split())  # newlines would end the row
    escaped = "".join("\\" + char if char in _MARKDOWN_SPECIAL else char for char in value)
    return escaped.replace("&", "&amp;")


def render_markdown(runs: list[dict]) -> str:
    """A GitHub-flavoured Markdown table and a bold totals line."""
    header = ["Started (UTC)", "Instance", "Status", *(title for title, _ in HUMAN_COLUMNS), "Error"]
    align = ["---", "---", "---", *("---:" for _ in HUMAN_COLUMNS), "---"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in result_rows(runs):
        cells = [row.started_at, row.instance, status_text(row),
                 *(human_figure(key, row.figure(key)) for _, key in HUMAN_COLUMNS), row.error]
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    lines += ["", f"**{markdown_cell(totals_line(totals_of(runs)))}**"]
    return "\n".join(lines)
