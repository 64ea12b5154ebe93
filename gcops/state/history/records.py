"""Run documents <-> table rows, the same for every database.

Every field of a run document and of each instance result (see SPEC "JSON
documents") is a real column, so totals and filters are plain SQL; each row also
keeps the whole JSON it came from, so a field added by a newer gcops survives a
round trip through an older one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

# Instance-result fields, in SPEC order, with how each is stored.
INSTANCE_TEXT = ("name", "playbook", "status", "error", "mode")
INSTANCE_BOOL = ("delete_untagged",)
INSTANCE_INT = (
    "storage_bytes_before", "storage_bytes_after", "reclaimed_bytes",
    "fs_used_bytes_before", "fs_used_bytes_after",
    "blobs_before", "blobs_after", "blobs_deleted", "manifests_deleted",
)
INSTANCE_REAL = ("window_seconds", "gc_seconds", "duration_seconds")
INSTANCE_COLUMNS = ("hosts",) + INSTANCE_TEXT + INSTANCE_BOOL + INSTANCE_INT + INSTANCE_REAL + ("tags_deleted",)
RUN_COLUMNS = ("run_id", "command", "dry_run", "started_at", "started_at_epoch", "finished_at", "exit_code",
               "total_reclaimed_bytes", "instances_ok", "instances_failed", "document")


@dataclass(frozen=True)
class StorageOwner:
    """``instance`` worked the storage ``storage_id`` in run ``run_id``, started at ``seen_at``."""

    storage_id: str
    instance: str
    run_id: str
    seen_at: str            # ISO 8601, UTC: 2026-11-29T02:00:00Z

    @classmethod
    def at(cls, storage_id: str, instance: str, run_id: str, when: datetime) -> "StorageOwner":
        return cls(storage_id, instance, run_id, as_utc(when).strftime("%Y-%m-%dT%H:%M:%SZ"))


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _epoch(value: object, field: str) -> float:
    try:
        moment = datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"run document: {field} {value!r} is not an ISO 8601 timestamp") from None
    return as_utc(moment).timestamp()


def _flag(value: object) -> int | None:
    return None if value is None else int(bool(value))


def _text(value: object) -> object:
    """A text column's value as every database takes it: PostgreSQL refuses NUL in text, and an error
    quoting a host's stderr may hold one."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def run_row(run: dict) -> tuple:
    """The ``runs`` row of a run document, in RUN_COLUMNS order. ValueError without run_id/started_at."""
    run_id = run.get("run_id")
    if not run_id:
        raise ValueError("run document has no run_id")
    started_epoch = _epoch(run.get("started_at"), "started_at")
    totals = run.get("totals") or {}
    header = {key: value for key, value in run.items() if key != "instances"}
    return (run_id, run.get("command") or "run", int(bool(run.get("dry_run"))), run["started_at"],
            started_epoch, run.get("finished_at"), run.get("exit_code"), totals.get("reclaimed_bytes"),
            totals.get("instances_ok"), totals.get("instances_failed"), json.dumps(header))


def instance_rows(run: dict) -> list[tuple]:
    """The ``instance_results`` rows of a run: (run_id, position, *INSTANCE_COLUMNS, document)."""
    rows = []
    for position, result in enumerate(run.get("instances") or []):
        values = [json.dumps(list(result.get("hosts") or []))]
        values += [_text(result.get(key)) for key in INSTANCE_TEXT]
        values += [_flag(result.get(key)) for key in INSTANCE_BOOL]
        values += [result.get(key) for key in INSTANCE_INT + INSTANCE_REAL]
        tags = result.get("tags_deleted")
        values.append(len(tags) if isinstance(tags, list) else None)
        rows.append((run["run_id"], position, *values, json.dumps(result)))
    return rows


_OVERLAID = INSTANCE_TEXT + INSTANCE_INT + INSTANCE_REAL
# read back by position (quicker than by name over years of runs): instance_from_values, run_from_values
RESULT_SELECT = ("run_id", "document", "hosts") + _OVERLAID + INSTANCE_BOOL
RUN_SELECT = ("run_id", "command", "dry_run", "started_at", "finished_at", "exit_code",
              "total_reclaimed_bytes", "instances_ok", "instances_failed", "document")


def instance_from_values(values: Sequence) -> dict:
    """An instance result from a RESULT_SELECT row: the stored JSON, with the columns laid over it
    (a migration may have fixed a column)."""
    result = orjson.loads(values[1])
    result["hosts"] = orjson.loads(values[2])
    result.update(zip(_OVERLAID, values[3:3 + len(_OVERLAID)]))
    for key, value in zip(INSTANCE_BOOL, values[3 + len(_OVERLAID):]):
        result[key] = None if value is None else bool(value)
    return result


def totals_of(instances: list[dict]) -> dict:
    """Run totals as `gcops run` computes them: bytes of successful results, failed = not ok."""
    ok = [r for r in instances if r.get("status") == "ok"]
    return {
        "reclaimed_bytes": sum(r["reclaimed_bytes"] for r in ok if r.get("reclaimed_bytes") is not None),
        "instances_ok": len(ok),
        "instances_failed": len(instances) - len(ok),
    }


def run_from_values(values: Sequence, instances: list[dict], filtered: bool) -> dict:
    """The run document of a RUN_SELECT row, in SPEC key order, then any keys this gcops does not know."""
    run_id, command, dry_run, started_at, finished_at, exit_code, reclaimed, ok, failed, document = values
    stored = orjson.loads(document)
    if filtered:
        # The run's own totals cover instances this view leaves out.
        totals = totals_of(instances)
    else:
        totals = {**(stored.get("totals") or {}),
                  "reclaimed_bytes": reclaimed, "instances_ok": ok, "instances_failed": failed}
    run = {"run_id": run_id, "command": command, "dry_run": bool(dry_run), "started_at": started_at,
           "finished_at": finished_at, "exit_code": exit_code, "instances": instances, "totals": totals}
    return {**run, **{k: v for k, v in stored.items() if k not in run}}


def runs_query(since: datetime | None, until: datetime | None, instance: str | None) -> tuple[str, list]:
    """(WHERE clause or "", its parameters) selecting runs started in [since, until) with ``instance``."""
    where, params = [], []
    if since is not None:
        where.append("started_at_epoch >= ?")
        params.append(as_utc(since).timestamp())
    if until is not None:
        where.append("started_at_epoch < ?")
        params.append(as_utc(until).timestamp())
    if instance is not None:
        where.append("run_id IN (SELECT run_id FROM instance_results WHERE name = ?)")
        params.append(instance)
    return (" WHERE " + " AND ".join(where) if where else ""), params
