"""What every report format shows: one row per (run, instance result), and totals.

Figures may be None (unknown: the instance failed before measuring). Unknown is
shown as "-" (or an empty cell) and left out of sums, never counted as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# Every numeric figure of an instance result, in SPEC order.
BYTE_FIGURES = (
    "storage_bytes_before", "storage_bytes_after", "reclaimed_bytes",
    "fs_used_bytes_before", "fs_used_bytes_after",
)
COUNT_FIGURES = ("blobs_before", "blobs_after", "blobs_deleted", "manifests_deleted", "tags_deleted")
SECOND_FIGURES = ("window_seconds", "gc_seconds", "duration_seconds")
FIGURES = BYTE_FIGURES + COUNT_FIGURES + SECOND_FIGURES

UNKNOWN = "-"
_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class ResultRow(NamedTuple):
    """One instance result of one run, flattened for display (a tuple: made by the ten thousand)."""
    run_id: str
    started_at: str
    dry_run: bool
    result: dict

    @property
    def instance(self) -> str:
        return str(self.result.get("name") or "")

    @property
    def status(self) -> str:
        return str(self.result.get("status") or "")

    @property
    def error(self) -> str:
        return str(self.result.get("error") or "")

    def figure(self, key: str) -> int | float | None:
        value = self.result.get(key)
        if key == "tags_deleted":   # a list of {"repository", "tag", "digest"}; absent in older runs: unknown
            return len(value) if isinstance(value, list) else None
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Totals:
    runs: int
    results: int
    reclaimed_bytes: int
    reclaimed_known: int  # results whose reclaimed_bytes is known


def result_rows(runs: list[dict]) -> list[ResultRow]:
    """One row per instance result, in the order of the runs given."""
    return [
        ResultRow(run_id=str(run.get("run_id") or ""), started_at=str(run.get("started_at") or ""),
                  dry_run=bool(run.get("dry_run")), result=result)
        for run in runs
        for result in run.get("instances") or []
    ]


def totals_of(runs: list[dict]) -> Totals:
    """Sums over every instance result of ``runs``; unknown figures are left out."""
    rows = result_rows(runs)
    known = [value for value in (r.figure("reclaimed_bytes") for r in rows) if value is not None]
    return Totals(runs=len(runs), results=len(rows), reclaimed_bytes=int(sum(known)),
                  reclaimed_known=len(known))


def human_bytes(value: int | float | None) -> str:
    """``1288490188`` -> ``"1.2 GiB"`` (IEC units); None -> ``"-"``."""
    if value is None:
        return UNKNOWN
    sign = "-" if value < 0 else ""
    amount = float(abs(value))
    if amount < 1024:
        return f"{sign}{int(amount)} B"
    for unit in _BYTE_UNITS:
        amount /= 1024
        if amount < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{sign}{amount:.1f} {unit}"
    raise AssertionError("unreachable")


def human_seconds(value: int | float | None) -> str:
    """``4.2`` -> ``"4.2s"``, ``192`` -> ``"3m12s"``, ``3720`` -> ``"1h02m"``; None -> ``"-"``."""
    if value is None:
        return UNKNOWN
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def human_count(value: int | float | None) -> str:
    return UNKNOWN if value is None else f"{value:,}"


def human_figure(key: str, value: int | float | None) -> str:
    if key in BYTE_FIGURES:
        return human_bytes(value)
    if key in SECOND_FIGURES:
        return human_seconds(value)
    return human_count(value)


# Columns of the human formats (table, markdown, html): (title, figure key).
HUMAN_COLUMNS = (
    ("Before", "storage_bytes_before"),
    ("After", "storage_bytes_after"),
    ("Reclaimed", "reclaimed_bytes"),
    ("Tags deleted", "tags_deleted"),
    ("Blobs deleted", "blobs_deleted"),
    ("Manifests deleted", "manifests_deleted"),
    ("Read-only window", "window_seconds"),
    ("GC", "gc_seconds"),
    ("Duration", "duration_seconds"),
)


def status_text(row: ResultRow) -> str:
    return f"{row.status} (dry run)" if row.dry_run else row.status


def totals_line(totals: Totals) -> str:
    """The human summary under a table."""
    line = (f"Total reclaimed: {human_bytes(totals.reclaimed_bytes)} "
            f"({totals.reclaimed_bytes:,} bytes) over {totals.runs} "
            f"run{'s' if totals.runs != 1 else ''}, {totals.results} instance "
            f"result{'s' if totals.results != 1 else ''}")
    unknown = totals.results - totals.reclaimed_known
    if unknown:
        line += f" ({unknown} with unknown reclaimed bytes)"
    return line
