"""``gcops report``: the recorded runs, filtered, in one format, to stdout or a file."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gcops.state.history import SqlHistory
from gcops.textfiles import write_atomically
from gcops.report.render import FORMATS, render_report

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(value: str, *, option: str, end_of_day: bool = False,
                 now: datetime | None = None) -> datetime:
    """``value`` as an aware UTC datetime; ValueError with a one-line message otherwise.

    Accepts YYYY-MM-DD (midnight UTC; with ``end_of_day``, the next midnight, so
    ``--until 2026-11-30`` includes that whole day), an ISO 8601 datetime (UTC
    when it has no offset) or an age relative to ``now``: ``90s``, ``30m``,
    ``24h``, ``7d``, ``2w``.
    """
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(seconds=int(relative[1]) * _UNIT_SECONDS[relative[2]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{option}: {value!r} is not a date (YYYY-MM-DD), an ISO 8601 datetime "
            f"(2026-11-29T02:00:00Z) or an age (24h, 7d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if end_of_day and _DATE_ONLY.match(text):
        moment += timedelta(days=1)
    return moment.astimezone(timezone.utc)


def _no_runs_line(store: SqlHistory, since: str | None, until: str | None, instance: str | None) -> str:
    """One line for a human instead of an empty table: what was asked, and where the history is."""
    asked = "".join(f" {flag} {value}" for flag, value in
                    (("--instance", instance), ("--since", since), ("--until", until)) if value)
    if not store.exists():
        return f"no runs recorded: no history yet in {store.where} (gcops run records one there)"
    return f"no runs recorded{' matching' + asked if asked else ''} (history: {store.where})"


def report(store: SqlHistory, *, since: str | None, until: str | None, instance: str | None,
           fmt: str, output: Path | None, now: datetime | None = None, wide: bool = False) -> str:
    """The report text, or "" after writing it to ``output``.

    Runs started in [since, until) are included. With no run to show, the
    table and markdown formats are one line saying so. Raises ValueError for a
    bad date, format or range, or an ``output`` whose folder does not exist;
    HistoryError for an unusable history, OSError when ``output`` cannot be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if output is not None and not Path(output).absolute().parent.is_dir():
        raise ValueError(f"-o {output}: folder {Path(output).absolute().parent} does not exist (create it first)")
    start = parse_moment(since, option="--since", now=now) if since else None
    end = parse_moment(until, option="--until", end_of_day=True, now=now) if until else None
    if start and end and start >= end:
        raise ValueError(f"--since ({start:%Y-%m-%dT%H:%M:%SZ}) is not before "
                         f"--until ({end:%Y-%m-%dT%H:%M:%SZ})")
    runs = store.load_runs(since=start, until=end, instance=instance)
    if not runs and fmt in ("table", "markdown"):
        text = _no_runs_line(store, since, until, instance)
    else:
        text = render_report(runs, fmt, wide=wide)
    if output is None:
        return text
    write_atomically(Path(output), text + "\n")
    return ""
