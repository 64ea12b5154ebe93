"""The HTML report's charts, as inline SVG (pygal; no script, no URL).

1. Reclaimed bytes per run, one bar per run stacked by instance: how much each
   night brought back, and from where.
2. Storage over time per instance: the size before GC at each run's start and
   after it at its end, so the line climbs between runs (growth) and drops at
   each run (GC). A line whose low points keep rising says GC does not keep up.

Time labels are the runs' own times in the shortest format that still tells
them apart (``Nov 29``, ``Nov 29 02:00``, ``11-29 02:00:05``), at most about a
dozen of them, so weeks of nightly runs stay readable.

Years of runs (a fleet's shared history) do not fit 960 pixels: past MAX_BARS runs
the bars sum the runs of each day, week, month or year (the shortest period that
fits), and past MAX_POINTS points a storage line keeps each stretch's highest and
lowest point (the sawtooth's envelope). Drawing is then as quick for 10,000 runs as
for a hundred.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pygal
from pygal.style import DefaultStyle

from gcops.report.rows import human_bytes, result_rows

MAX_LABELS = 12
MAX_BARS = 120
MAX_POINTS = 400
# a period's key for a moment, and its label
_PERIODS = (("day", lambda m: (m.year, m.month, m.day), "{0}-{1:02d}-{2:02d}"),
            ("week", lambda m: tuple(m.isocalendar())[:2], "{0}-W{1:02d}"),
            ("month", lambda m: (m.year, m.month), "{0}-{1:02d}"),
            ("year", lambda m: (m.year,), "{0}"))
_FORMATS = ("%b %d", "%b %d %H:%M", "%m-%d %H:%M:%S")
_STYLE = DefaultStyle(background="white", plot_background="white", font_family="DejaVu Sans, sans-serif",
                      label_font_size=12, major_label_font_size=12, legend_font_size=13, title_font_size=16)


def parse_time(value: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def time_format(moments: list[datetime]) -> str:
    """The coarsest strftime format under which every distinct moment has its own label."""
    distinct = sorted(set(moments))
    for fmt in _FORMATS:
        if len({m.strftime(fmt) for m in distinct}) == len(distinct):
            return fmt
    return _FORMATS[-1]


def byte_ticks(low: float, high: float, count: int = 5) -> list[int]:
    """About ``count`` round byte values (1, 2, 2.5 or 5 x a power of ten, in KiB/MiB/GiB/TiB) covering [low, high]."""
    span = max(high - low, 1.0)
    unit = 1
    while unit * 1024 <= span and unit < 1024 ** 4:
        unit *= 1024
    raw = span / unit / count
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1 / 10 ** len(str(int(1 / raw)))
    step = max(1, next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw) * unit)
    first = int(low // step) * step
    return [int(first + i * step) for i in range(int((high - first) // step) + 2)]


def _every(count: int) -> int:
    return max(1, -(-count // MAX_LABELS))


def _clean(svg: str) -> str:
    """pygal's comments (URLs) and config <script> removed; value labels become <title> tooltips."""
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<script\b.*?</script>", "", svg, flags=re.DOTALL)
    return re.sub(r'<desc class="value">(.*?)</desc>', r"<title>\1</title>", svg, flags=re.DOTALL)


def _options(title: str, **extra) -> dict:
    return dict(js=[], disable_xml_declaration=True, width=960, height=380, explicit_size=False, title=title,
                style=_STYLE, truncate_legend=40, legend_at_bottom=True, legend_at_bottom_columns=4,
                value_formatter=human_bytes, x_label_rotation=30, show_minor_x_labels=False, print_values=False) | extra


def reclaimed_bars_svg(runs: list[dict]) -> str | None:
    """Stacked bars: reclaimed bytes per run (x, in time order), one colour per instance; None without figures."""
    columns: list[tuple[datetime, str]] = []   # (started, run_id), one per run with a figure
    values: dict[str, dict[str, int]] = {}     # instance -> run_id -> reclaimed
    values_seen: set[str] = set()              # run ids already in columns
    for row in result_rows(runs):
        moment, reclaimed = parse_time(row.started_at), row.figure("reclaimed_bytes")
        if moment is None or reclaimed is None or row.dry_run:
            continue
        if row.run_id not in values_seen:
            values_seen.add(row.run_id)
            columns.append((moment, row.run_id))
        values.setdefault(row.instance, {})[row.run_id] = max(int(reclaimed), 0)
    if not columns:
        return None
    columns.sort()
    if len(columns) > MAX_BARS:
        columns, values, labels, per = _per_period(columns, values)
    else:
        fmt = time_format([m for m, _ in columns])
        labels, per = [m.strftime(fmt) for m, _ in columns], "run"
    tallest = max(sum(v.get(run_id) or 0 for v in values.values()) for _, run_id in columns)
    chart = pygal.StackedBar(**_options(f"Reclaimed per {per} (stacked by instance)"),
                             x_labels_major_every=_every(len(columns)), y_labels=byte_ticks(0, tallest))
    chart.x_labels = labels
    for name in sorted(values):
        chart.add(name, [values[name].get(run_id) for _, run_id in columns])
    return _clean(chart.render(is_unicode=True))


def _per_period(columns: list[tuple[datetime, str]], values: dict[str, dict[str, int]]):
    """The bars summed per calendar period, the shortest that gives at most MAX_BARS bars:
    (columns, values, labels, period name), columns keyed by the period's label."""
    for period, key_of, label in _PERIODS:
        keys = [label.format(*key) for key in map(key_of, (m for m, _ in columns))] \
            if len({key_of(m) for m, _ in columns}) <= MAX_BARS or period == "year" else None
        if keys is not None:
            break
    summed: dict[str, dict[str, int]] = {}
    for name, by_run in values.items():
        mine = summed.setdefault(name, {})
        for (_, run_id), key in zip(columns, keys):
            if run_id in by_run:
                mine[key] = mine.get(key, 0) + by_run[run_id]
    first: dict[str, datetime] = {}
    for (moment, _), key in zip(columns, keys):
        first.setdefault(key, moment)
    return [(moment, key) for key, moment in first.items()], summed, list(first), period


def _envelope(points: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """At most about MAX_POINTS points: of each stretch of consecutive points, its lowest and highest."""
    if len(points) <= MAX_POINTS:
        return points
    size = -(-len(points) // (MAX_POINTS // 2))
    kept = []
    for start in range(0, len(points), size):
        stretch = points[start:start + size]
        low, high = min(stretch, key=lambda p: p[1]), max(stretch, key=lambda p: p[1])
        kept += sorted({low, high})
    return kept


def storage_trend_svg(runs: list[dict]) -> str | None:
    """Storage per instance over time: before GC at each run's start, after it at its end; None without figures."""
    series: dict[str, list[tuple[datetime, int]]] = {}
    for run in runs:
        if run.get("dry_run"):
            continue
        started, finished = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
        for row in result_rows([run]):
            before, after = row.figure("storage_bytes_before"), row.figure("storage_bytes_after")
            points = series.setdefault(row.instance, [])
            if started is not None and before is not None:
                points.append((started, int(before)))
            if (finished or started) is not None and after is not None:
                points.append((finished or started, int(after)))
    series = {name: _envelope(sorted(points)) for name, points in series.items() if points}
    if not series:
        return None
    moments = sorted({m for points in series.values() for m, _ in points})
    starts = sorted({m for run in runs if (m := parse_time(run.get("started_at"))) is not None})
    fmt = time_format(starts or moments)
    figures = [v for points in series.values() for _, v in points]
    low, high = min(figures), max(figures)
    pad = max((high - low) * 0.15, high * 0.02, 1024)
    chart = pygal.DateTimeLine(**_options("Storage before and after each run", show_minor_x_labels=True),
                               x_value_formatter=lambda moment: moment.strftime(fmt),
                               range=(max(0, low - pad), high + pad), dots_size=2,
                               y_labels=byte_ticks(max(0, low - pad), high + pad))
    chart.x_labels = starts[::_every(len(starts))] if starts else None
    for name in sorted(series):
        chart.add(name, series[name])
    return _clean(chart.render(is_unicode=True))
