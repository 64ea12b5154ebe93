"""Human reports as text: a rich table (plain, no colour codes) and Markdown."""

from __future__ import annotations

from gcops.report.fit import Column, fit_table, terminal_width
from gcops.report.rows import HUMAN_COLUMNS, human_figure, result_rows, status_text, totals_of, totals_line

# (column, figure key): what an admin reads stays (drop_order 0); the rest goes first on a narrow terminal.
_FIGURE_COLUMNS = (
    (Column("Reclaimed", right=True), "reclaimed_bytes"),
    (Column("Before", right=True), "storage_bytes_before"),
    (Column("After", right=True), "storage_bytes_after"),
    (Column("Window", right=True), "window_seconds"),
    (Column("GC", right=True, drop_order=3), "gc_seconds"),
    (Column("Duration", right=True, drop_order=2), "duration_seconds"),
    (Column("Blobs deleted", right=True, drop_order=4), "blobs_deleted"),
    (Column("Manifests deleted", right=True, drop_order=5), "manifests_deleted"),
    (Column("Tags deleted", right=True, drop_order=6), "tags_deleted"),
)
_ERROR = Column("Error", drop_order=9, fold=True)


def _when(started_at: str) -> str:
    """2026-11-29T02:00:00Z -> 2026-11-29 02:00:00 (UTC, as the column title says)."""
    return started_at.replace("T", " ").removesuffix("Z").split(".")[0].split("+")[0]


def _short_when(when: str) -> str:
    """2026-11-29 02:00:00 -> 11-29 02:00 (the compact form for a narrow terminal)."""
    return when[5:16] if len(when) >= 16 else when


def render_table(runs: list[dict], *, width: int | None = None, wide: bool = False) -> str:
    """One row per (run, instance result), then the totals line.

    ``width``: fit that many columns (default: the terminal's, none off a terminal);
    errors of a column left out are listed under the table, never lost.
    """
    if width is None and not wide:
        width = terminal_width()
    columns = [Column("Started", compact=_short_when), Column("Instance", fold=True), Column("Status"),
               *(col for col, _ in _FIGURE_COLUMNS), _ERROR]
    rows = []
    for row in result_rows(runs):
        rows.append([_when(row.started_at), row.instance, status_text(row),
                     *(human_figure(key, row.figure(key)) for _, key in _FIGURE_COLUMNS), row.error])
    title = "gcops: space reclaimed by registry garbage collection (times in UTC)"
    text, dropped = fit_table(title, columns, rows, None if wide else width)
    lines = [text, totals_line(totals_of(runs))]
    if _ERROR.title in dropped:
        for row in rows:
            if row[-1]:
                lines.append(f"{row[0]} {row[1]}: {row[-1]}")
    hidden = [title for title in dropped if title != _ERROR.title]
    if hidden:
        lines.append(f"(not shown: {', '.join(hidden)}; --wide shows every column)")
    return "\n".join(lines)


_MARKDOWN_ESCAPES = str.maketrans({char: "\\" + char for char in "\\`*_[]<>|~#"} | {"&": "&amp;"})


def markdown_cell(value: str) -> str:
    """``value`` safe inside a GitHub-flavoured Markdown table cell (one line, escaped)."""
    return " ".join(value.split()).translate(_MARKDOWN_ESCAPES)  # newlines would end the row


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
