"""The run history: SQLite at ``<state_dir>/history.sqlite3``.

This is the only module that speaks SQL. Every field of a run document and of
each instance result (see SPEC "JSON documents") is a real column, so totals
and filters are plain SQL; each row also keeps the whole JSON it came from, so
a field added by a newer gcops survives a round trip through an older one.

Schema changes are migrations: ``MIGRATIONS[i]`` takes the database from
version ``i`` to ``i + 1`` (``PRAGMA user_version``). To change the schema,
append a function; never edit one that has shipped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from gcops.errors import StateError

DB_NAME = "history.sqlite3"

# Instance-result fields, in SPEC order, with how each is stored.
_INSTANCE_TEXT = ("name", "playbook", "status", "error", "mode")
_INSTANCE_BOOL = ("delete_untagged",)
_INSTANCE_INT = (
    "storage_bytes_before", "storage_bytes_after", "reclaimed_bytes",
    "fs_used_bytes_before", "fs_used_bytes_after",
    "blobs_before", "blobs_after", "blobs_deleted", "manifests_deleted",
)
_INSTANCE_REAL = ("window_seconds", "gc_seconds", "duration_seconds")
_INSTANCE_COLUMNS = ("hosts",) + _INSTANCE_TEXT + _INSTANCE_BOOL + _INSTANCE_INT + _INSTANCE_REAL + ("tags_deleted",)



class HistoryError(StateError):
    """The history database cannot be used; the message is one line for the user."""


def _v1_initial_schema(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE runs (
            run_id            TEXT PRIMARY KEY,
            command           TEXT NOT NULL,
            dry_run           INTEGER NOT NULL,
            started_at        TEXT NOT NULL,     -- as recorded (ISO 8601)
            started_at_epoch  REAL NOT NULL,     -- the same instant, for range queries
            finished_at       TEXT,
            exit_code         INTEGER,
            total_reclaimed_bytes INTEGER,
            instances_ok      INTEGER,
            instances_failed  INTEGER,
            document          TEXT NOT NULL      -- the run JSON without "instances"
        )""")
    db.execute("CREATE INDEX runs_started_at ON runs (started_at_epoch)")
    db.execute("""
        CREATE TABLE instance_results (
            run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            position  INTEGER NOT NULL,          -- order within the run document
            name      TEXT NOT NULL,
            hosts     TEXT NOT NULL,             -- JSON array
            playbook  TEXT,
            status    TEXT NOT NULL,
            error     TEXT,
            mode      TEXT,
            delete_untagged INTEGER,
            storage_bytes_before INTEGER, storage_bytes_after INTEGER, reclaimed_bytes INTEGER,
            fs_used_bytes_before INTEGER, fs_used_bytes_after INTEGER,
            blobs_before INTEGER, blobs_after INTEGER,
            blobs_deleted INTEGER, manifests_deleted INTEGER,
            window_seconds REAL, gc_seconds REAL, duration_seconds REAL,
            document  TEXT NOT NULL,             -- the whole instance JSON
            PRIMARY KEY (run_id, position)
        )""")
    db.execute("CREATE INDEX instance_results_name ON instance_results (name)")


def _v2_tags_deleted(db: sqlite3.Connection) -> None:
    """Retention (issue 12): how many tags a run deleted; the list itself stays in the JSON document.
    Rows recorded before it are NULL (unknown), not 0."""
    db.execute("ALTER TABLE instance_results ADD COLUMN tags_deleted INTEGER")


def _v3_storage_owners(db: sqlite3.Connection) -> None:
    # which instance last worked each storage (by its gcops-storage-id), so that a second
    # instance on the same storage is noticed across runs (shared_storage.py)
    db.execute("""
        CREATE TABLE storage_owners (
            storage_id  TEXT PRIMARY KEY,
            instance    TEXT NOT NULL,
            run_id      TEXT NOT NULL,
            seen_at     TEXT NOT NULL        -- ISO 8601, UTC
        )""")


# MIGRATIONS[i] upgrades a database at user_version i to i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1_initial_schema, _v2_tags_deleted,
                                                          _v3_storage_owners]


def schema_version() -> int:
    """The schema version this gcops writes."""
    return len(MIGRATIONS)


def db_path(state_dir: Path) -> Path:
    return Path(state_dir) / DB_NAME


def _user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def _newer_schema(path: Path, version: int) -> HistoryError:
    return HistoryError(f"{path}: history schema version {version} is newer than this gcops "
                        f"knows ({schema_version()}); upgrade gcops")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply every pending migration, each in its own transaction."""
    known = schema_version()
    while True:
        db.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock
        try:
            version = _user_version(db)
            if version > known:
                raise _newer_schema(path, version)
            if version == known:
                db.execute("COMMIT")
                return
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1:d}")
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise


def _connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """An autocommit connection (transactions are explicit); HistoryError if unusable."""
    try:
        if read_only:
            db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                 timeout=30, isolation_level=None)
        else:
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
        _user_version(db)  # fails here on a file that is not a database
    except sqlite3.Error as exc:
        raise HistoryError(f"{path}: cannot open history database: {exc}") from None
    return db


def _open(state_dir: Path, *, for_writing: bool) -> sqlite3.Connection:
    """Open (creating when writing) and migrate the database; HistoryError otherwise."""
    path = db_path(state_dir)
    if for_writing:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(f"{path.parent}: cannot create state directory: {exc.strerror}") from None
    db = _connect(path, read_only=not for_writing)
    try:
        version = _user_version(db)
        if version > schema_version():
            raise _newer_schema(path, version)
        if version < schema_version():
            if not for_writing:  # an older schema must be upgraded before reading it
                db.close()
                db = _connect(path, read_only=False)
            _migrate(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise HistoryError(f"{path}: cannot use history database: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


def _epoch(value: str, field: str) -> float:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"run document: {field} {value!r} is not an ISO 8601 timestamp") from None
    return _as_utc(moment).timestamp()


def _as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _flag(value: object) -> int | None:
    return None if value is None else int(bool(value))


def _instance_row(run_id: str, position: int, result: dict) -> tuple:
    values = [json.dumps(list(result.get("hosts") or []))]
    values += [result.get(key) for key in _INSTANCE_TEXT]
    values += [_flag(result.get(key)) for key in _INSTANCE_BOOL]
    values += [result.get(key) for key in _INSTANCE_INT + _INSTANCE_REAL]
    tags = result.get("tags_deleted")
    values.append(len(tags) if isinstance(tags, list) else None)
    return (run_id, position, *values, json.dumps(result))


def record_run(state_dir: Path, run: dict) -> None:
    """Store ``run`` (a SPEC run document), replacing an earlier record of the same run_id.

    Raises ValueError for a document without run_id/started_at, HistoryError when
    the database cannot be used.
    """
    run_id = run.get("run_id")
    if not run_id:
        raise ValueError("run document has no run_id")
    started_epoch = _epoch(run.get("started_at"), "started_at")
    instances = list(run.get("instances") or [])
    totals = run.get("totals") or {}
    header = {key: value for key, value in run.items() if key != "instances"}
    placeholders = ", ".join("?" * (len(_INSTANCE_COLUMNS) + 3))

    db = _open(state_dir, for_writing=True)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM instance_results WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            db.execute(
                "INSERT INTO runs (run_id, command, dry_run, started_at, started_at_epoch,"
                " finished_at, exit_code, total_reclaimed_bytes, instances_ok,"
                " instances_failed, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, run.get("command") or "run", int(bool(run.get("dry_run"))),
                 run["started_at"], started_epoch, run.get("finished_at"), run.get("exit_code"),
                 totals.get("reclaimed_bytes"), totals.get("instances_ok"),
                 totals.get("instances_failed"), json.dumps(header)))
            db.executemany(
                f"INSERT INTO instance_results (run_id, position, {', '.join(_INSTANCE_COLUMNS)},"
                f" document) VALUES ({placeholders})",
                [_instance_row(run_id, i, result) for i, result in enumerate(instances)])
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    except sqlite3.Error as exc:
        raise HistoryError(f"{db_path(state_dir)}: cannot record run {run_id}: {exc}") from None
    finally:
        db.close()


def _instance_from_row(row: sqlite3.Row) -> dict:
    """The stored JSON, with the columns laid over it (a migration may have fixed a column)."""
    result = json.loads(row["document"])
    result["hosts"] = json.loads(row["hosts"])
    for key in _INSTANCE_TEXT + _INSTANCE_INT + _INSTANCE_REAL:
        result[key] = row[key]
    for key in _INSTANCE_BOOL:
        result[key] = None if row[key] is None else bool(row[key])
    return result


def _totals_of(instances: list[dict]) -> dict:
    """Run totals as `gcops run` computes them: bytes of successful results, failed = not ok."""
    ok = [r for r in instances if r.get("status") == "ok"]
    return {
        "reclaimed_bytes": sum(r["reclaimed_bytes"] for r in ok if r.get("reclaimed_bytes") is not None),
        "instances_ok": len(ok),
        "instances_failed": len(instances) - len(ok),
    }


def _run_from_row(row: sqlite3.Row, instances: list[dict], filtered: bool) -> dict:
    """The run document in SPEC key order, then any keys this gcops does not know."""
    stored = json.loads(row["document"])
    if filtered:
        # The run's own totals cover instances this view leaves out.
        totals = _totals_of(instances)
    else:
        totals = {**(stored.get("totals") or {}),
                  "reclaimed_bytes": row["total_reclaimed_bytes"],
                  "instances_ok": row["instances_ok"],
                  "instances_failed": row["instances_failed"]}
    run = {"run_id": row["run_id"], "command": row["command"], "dry_run": bool(row["dry_run"]),
           "started_at": row["started_at"], "finished_at": row["finished_at"],
           "exit_code": row["exit_code"], "instances": instances, "totals": totals}
    return {**run, **{k: v for k, v in stored.items() if k not in run}}


def load_runs(state_dir: Path, *, since: datetime | None = None, until: datetime | None = None,
              instance: str | None = None) -> list[dict]:
    """Run documents started in [since, until), oldest first; [] when there is no history yet.

    Naive datetimes are UTC. With ``instance``, each run keeps only that instance's
    result (and totals are recomputed over it); runs without it are left out.
    Raises HistoryError when the database cannot be read.
    """
    if not db_path(state_dir).exists():
        return []
    where, params = [], []
    if since is not None:
        where.append("started_at_epoch >= ?")
        params.append(_as_utc(since).timestamp())
    if until is not None:
        where.append("started_at_epoch < ?")
        params.append(_as_utc(until).timestamp())
    if instance is not None:
        where.append("run_id IN (SELECT run_id FROM instance_results WHERE name = ?)")
        params.append(instance)
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at_epoch, run_id"

    db = _open(state_dir, for_writing=False)
    db.row_factory = sqlite3.Row
    try:
        runs = []
        for row in db.execute(sql, params).fetchall():
            result_sql = "SELECT * FROM instance_results WHERE run_id = ?"
            result_params: list = [row["run_id"]]
            if instance is not None:
                result_sql += " AND name = ?"
                result_params.append(instance)
            results = db.execute(result_sql + " ORDER BY position", result_params).fetchall()
            runs.append(_run_from_row(row, [_instance_from_row(r) for r in results],
                                      filtered=instance is not None))
        return runs
    except (sqlite3.Error, ValueError) as exc:
        raise HistoryError(f"{db_path(state_dir)}: cannot read history: {exc}") from None
    finally:
        db.close()


def storage_owner(state_dir: Path, storage_id: str) -> dict | None:
    """{"instance", "run_id", "seen_at"} of the instance that last worked this storage, or None
    (also when there is no history yet). Raises HistoryError when the database cannot be read."""
    if not db_path(state_dir).exists():
        return None
    db = _open(state_dir, for_writing=False)
    try:
        row = db.execute("SELECT instance, run_id, seen_at FROM storage_owners WHERE storage_id = ?",
                         (storage_id,)).fetchone()
    except sqlite3.Error as exc:
        raise HistoryError(f"{db_path(state_dir)}: cannot read history: {exc}") from None
    finally:
        db.close()
    return None if row is None else {"instance": row[0], "run_id": row[1], "seen_at": row[2]}


def record_storage_owner(state_dir: Path, storage_id: str, instance: str, run_id: str,
                         seen_at: datetime) -> None:
    """Remember that `instance` worked the storage `storage_id` in `run_id`. Raises HistoryError."""
    db = _open(state_dir, for_writing=True)
    try:
        db.execute("INSERT OR REPLACE INTO storage_owners (storage_id, instance, run_id, seen_at)"
                   " VALUES (?, ?, ?, ?)",
                   (storage_id, instance, run_id,
                    _as_utc(seen_at).strftime("%Y-%m-%dT%H:%M:%SZ")))
    except sqlite3.Error as exc:
        raise HistoryError(f"{db_path(state_dir)}: cannot record storage owner: {exc}") from None
    finally:
        db.close()
