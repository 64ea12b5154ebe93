"""The Prometheus textfile (node_exporter textfile collector) written after each run.

One file holds every instance gcops has run against, so a run of some instances
must not erase the others: the previous file is read back and its series for
instances this run did not touch are carried over.

Semantics, per instance (``instance`` label = instance name):

- Dry runs and other commands (``command != "run"`` or ``dry_run``) leave the file
  untouched: nothing happened to any registry.
- An instance whose status is ``skipped`` did not run: its series are carried
  over unchanged.
- Any other status is a run. ``gcops_last_run_timestamp_seconds`` is the run's
  ``finished_at`` (``started_at`` when unknown), ``gcops_last_run_success`` is 1
  only for status ``ok`` (``failed`` and ``not_restored`` give 0).
- ``gcops_last_success_timestamp_seconds`` moves only on success; after a failure
  it keeps its previous value, or is 0 when the instance never succeeded, so
  ``time() - gcops_last_success_timestamp_seconds > 2 * 86400`` alerts for a
  new instance that never worked as well.
- The figures (reclaimed bytes, storage before/after, read-only window, GC
  duration, blobs deleted) are one consistent set: those of the latest
  successful run. A failed run leaves them as they were (mixing a failed run's
  "before" with an earlier run's "after" would show bytes never reclaimed);
  gcops_last_run_success = 0 says the last run failed.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

log = structlog.get_logger(__name__)

LAST_RUN = "gcops_last_run_timestamp_seconds"
LAST_SUCCESS = "gcops_last_success_timestamp_seconds"
LAST_RUN_SUCCESS = "gcops_last_run_success"
RECLAIMED = "gcops_reclaimed_bytes"
STORAGE = "gcops_storage_bytes"
WINDOW = "gcops_readonly_window_seconds"
GC_DURATION = "gcops_gc_duration_seconds"
BLOBS_DELETED = "gcops_blobs_deleted"
TAGS_DELETED = "gcops_tags_deleted"
HISTORY_UNSENT = "gcops_history_unsent_runs"   # not per instance: records waiting in this machine's outbox

# name -> (help, extra label names)
GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    LAST_RUN: ("Unix time the last gcops run of this instance finished.", ()),
    LAST_SUCCESS: ("Unix time the last successful gcops run of this instance finished "
                   "(0: never).", ()),
    LAST_RUN_SUCCESS: ("1 if the last gcops run of this instance succeeded, else 0.", ()),
    RECLAIMED: ("Bytes reclaimed by the last garbage collection that measured them.", ()),
    STORAGE: ("Bytes the registry storage took before/after the last garbage collection.",
              ("when",)),
    WINDOW: ("Seconds the registry refused writes during the last garbage collection.", ()),
    GC_DURATION: ("Seconds the last registry garbage-collect took.", ()),
    BLOBS_DELETED: ("Blobs deleted by the last garbage collection.", ()),
    TAGS_DELETED: ("Tags deleted by retention rules in the last successful run.", ()),
}

# Gauge (and its extra labels) fed by each figure of an instance result.
_FIGURES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("reclaimed_bytes", RECLAIMED, {}),
    ("storage_bytes_before", STORAGE, {"when": "before"}),
    ("storage_bytes_after", STORAGE, {"when": "after"}),
    ("window_seconds", WINDOW, {}),
    ("gc_seconds", GC_DURATION, {}),
    ("blobs_deleted", BLOBS_DELETED, {}),
    ("tags_deleted", TAGS_DELETED, {}),
)

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # (metric name, sorted labels)


def _key(name: str, labels: dict[str, str]) -> SeriesKey:
    return name, tuple(sorted(labels.items()))


def read_series(path: Path) -> dict[SeriesKey, float]:
    """The gcops series of an existing textfile; {} when absent or unreadable (logged)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("metrics_previous_unreadable", path=str(path), error=str(exc))
        return {}
    series: dict[SeriesKey, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in GAUGES and "instance" in sample.labels:
                    series[_key(sample.name, sample.labels)] = sample.value
    except ValueError as exc:
        log.warning("metrics_previous_unparsable", path=str(path), error=str(exc))
        return {}
    return series


def _timestamp(run: dict) -> float:
    for field in ("finished_at", "started_at"):
        try:
            moment = datetime.fromisoformat(run.get(field) or "")
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return datetime.now(timezone.utc).timestamp()


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def updated_series(previous: dict[SeriesKey, float], run: dict) -> dict[SeriesKey, float]:
    """``previous`` with the series of every instance that ran in ``run`` brought up to date."""
    series = dict(previous)
    finished = _timestamp(run)
    for result in run.get("instances") or []:
        name = result.get("name")
        if not name or result.get("status") == "skipped":
            continue
        ok = result.get("status") == "ok"
        instance = {"instance": str(name)}
        series[_key(LAST_RUN, instance)] = finished
        series[_key(LAST_RUN_SUCCESS, instance)] = 1.0 if ok else 0.0
        last_success = _key(LAST_SUCCESS, instance)
        series[last_success] = finished if ok else series.get(last_success, 0.0)
        for field, metric, extra in _FIGURES if ok else ():
            value = result.get(field)
            if field == "tags_deleted" and isinstance(value, list):
                value = len(value)
            if _is_number(value):
                series[_key(metric, {**instance, **extra})] = float(value)
    return series


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of ``path`` between gcops processes."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_metrics(path: Path, run: dict, history_unsent: int | None = None) -> None:
    """Update the textfile at ``path`` (atomically replaced) with ``run``; see the module doc.
    ``history_unsent``: runs this machine could not record in the history yet (its outbox), as
    gcops_history_unsent_runs (alert when it stays above 0: the history database is unreachable).

    Raises OSError when the file cannot be written.
    """
    if run.get("command", "run") != "run" or run.get("dry_run"):
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        series = updated_series(read_series(path), run)
        registry = CollectorRegistry(auto_describe=False)
        gauges = {name: Gauge(name, help_text, ["instance", *extra], registry=registry)
                  for name, (help_text, extra) in GAUGES.items()}
        for (name, labels), value in sorted(series.items()):
            labels = dict(labels)
            if set(labels) != {"instance", *GAUGES[name][1]}:
                continue  # a series from another layout: drop it rather than fail
            gauges[name].labels(**labels).set(value)
        if history_unsent is not None:
            Gauge(HISTORY_UNSENT, "Runs recorded only in this machine's outbox, not yet in the history database.",
                  registry=registry).set(history_unsent)
        write_to_textfile(str(path), registry)
