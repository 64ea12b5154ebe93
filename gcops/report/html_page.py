"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL).

A Content-Security-Policy meta tag forbids fetching anything, so the page shows
the same offline, from a mail attachment or from a CI artifact.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import escape

import pygal

from gcops.report.rows import (
    HUMAN_COLUMNS, human_bytes, human_figure, result_rows, status_text, totals_line, totals_of,
)

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


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def reclaimed_chart_svg(runs: list[dict]) -> str | None:
    """An inline SVG line chart of reclaimed bytes per run, one line per instance.

    None when no run has a known reclaimed figure. pygal's links to its hosted
    JavaScript are disabled; its comments (URLs) and its config <script> are
    removed, and value labels become <title> elements (tooltips without script).
    """
    series: dict[str, list[tuple[datetime, int]]] = {}
    for row in result_rows(runs):
        moment, reclaimed = _parse_time(row.started_at), row.figure("reclaimed_bytes")
        if moment is not None and reclaimed is not None:
            series.setdefault(row.instance, []).append((moment, reclaimed))
    if not series:
        return None
    chart = pygal.DateTimeLine(
        js=[], disable_xml_declaration=True, width=960, height=360, explicit_size=False,
        title="Reclaimed bytes per run", x_label_rotation=20, truncate_legend=40,
        x_value_formatter=lambda moment: moment.strftime("%Y-%m-%d %H:%M"),
        value_formatter=human_bytes, show_minor_x_labels=True)
    for name in sorted(series):
        chart.add(name, sorted(series[name]))
    svg = chart.render(is_unicode=True)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<script\b.*?</script>", "", svg, flags=re.DOTALL)
    return re.sub(r'<desc class="value">(.*?)</desc>', r"<title>\1</title>", svg, flags=re.DOTALL)


def _cell(text: str, *, value: int | float | None = None, numeric: bool = False) -> str:
    attributes = ' class="num"' if numeric else ""
    if value is not None:
        attributes += f' data-value="{escape(str(value))}"'
    return f"<td{attributes}>{escape(text)}</td>"


def _table(runs: list[dict]) -> str:
    head = ["Started (UTC)", "Run", "Instance", "Status", *(t for t, _ in HUMAN_COLUMNS), "Error"]
    lines = ["<table>", "<thead><tr>" + "".join(f"<th>{escape(t)}</th>" for t in head)
             + "</tr></thead>", "<tbody>"]
    for row in result_rows(runs):
        cells = [_cell(row.started_at), _cell(row.run_id), _cell(row.instance),
                 _cell(status_text(row))]
        cells += [_cell(human_figure(key, row.figure(key)), value=row.figure(key), numeric=True)
                  for _, key in HUMAN_COLUMNS]
        cells.append(_cell(row.error))
        status_class = re.sub(r"[^a-z_]", "", row.status)
        lines.append(f'<tr class="{status_class}">' + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def render_html(runs: list[dict]) -> str:
    """A complete HTML5 document: totals, the chart, and the table of every result."""
    totals = totals_of(runs)
    chart = reclaimed_chart_svg(runs)
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
        f"<figure>{chart}</figure>" if chart else "<p>No reclaimed bytes recorded in this period.</p>",
        _table(runs) if totals.results else "<p>No runs recorded in this period.</p>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts)
