"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL).

A Content-Security-Policy meta tag forbids fetching anything, so the page shows
the same offline, from a mail attachment or from a CI artifact.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape

from gcops.report.charts import reclaimed_bars_svg, storage_trend_svg
from gcops.report.rows import HUMAN_COLUMNS, human_figure, result_rows, status_text, totals_line, totals_of

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; }
table { border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed td, tr.not_restored td { background: #fdecea; }
tr.skipped td { color: #777; }
.totals { font-weight: bold; }
figure { margin: 1em 0; max-width: 960px; }
figure svg { width: 100%; height: auto; }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _cell(text: str, *, value: int | float | None = None, numeric: bool = False) -> str:
    attributes = ' class="num"' if numeric else ""
    if value is not None:
        attributes += f' data-value="{escape(str(value))}"'
    return f"<td{attributes}>{escape(text)}</td>"


@lru_cache(maxsize=8192)
def _figure_text(key: str, value: int | float | None) -> str:
    return escape(human_figure(key, value))


def _figure_cell(key: str, value: int | float | None) -> str:
    """What _cell gives for a figure (a number's own digits need no escaping); quick for years of runs."""
    if value is None:
        return f'<td class="num">{_figure_text(key, None)}</td>'
    return f'<td class="num" data-value="{value}">{_figure_text(key, value)}</td>'


def _table(runs: list[dict]) -> str:
    head = ["Started (UTC)", "Run", "Instance", "Status", *(t for t, _ in HUMAN_COLUMNS), "Error"]
    lines = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(t)}</th>" for t in head)
             + "</tr></thead>", "<tbody>"]
    for row in result_rows(runs):
        cells = [_cell(row.started_at), _cell(row.run_id), _cell(row.instance),
                 _cell(status_text(row))]
        cells += [_figure_cell(key, row.figure(key)) for _, key in HUMAN_COLUMNS]
        cells.append(_cell(row.error))
        status_class = re.sub(r"[^a-z_]", "", row.status)
        lines.append(f'<tr class="{status_class}">' + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def render_html(runs: list[dict]) -> str:
    """A complete HTML5 document: totals, the charts, and the table of every result."""
    totals = totals_of(runs)
    charts = [svg for svg in (reclaimed_bars_svg(runs), storage_trend_svg(runs)) if svg]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>gcops report</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>gcops: space reclaimed by registry garbage collection</h1>",
        f'<p class="totals" data-reclaimed-bytes="{totals.reclaimed_bytes}">'
        f"{escape(totals_line(totals))}</p>",
        "".join(f"<figure>{svg}</figure>" for svg in charts) or "<p>No reclaimed bytes recorded in this period.</p>",
        _table(runs) if totals.results else "<p>No runs recorded in this period.</p>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts)
