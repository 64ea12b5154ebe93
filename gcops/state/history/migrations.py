"""The history schema as versioned migrations, one list for SQLite and PostgreSQL alike.

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``: a tuple of SQL
statements. Column types are written ``{int}`` and ``{real}`` and rendered per
database (``render``): byte counts pass 2**31, so PostgreSQL needs BIGINT where
SQLite's INTEGER already holds 64 bits. To change the schema, append a migration;
never edit one that has shipped. SQLite keeps the version in ``PRAGMA
user_version``, PostgreSQL in the one-row table ``gcops_schema``.
"""

from __future__ import annotations

TYPES = {
    "sqlite": {"int": "INTEGER", "real": "REAL"},
    "postgresql": {"int": "BIGINT", "real": "DOUBLE PRECISION"},
}

_V1_INITIAL_SCHEMA = (
    """CREATE TABLE runs (
        run_id            TEXT PRIMARY KEY,
        command           TEXT NOT NULL,
        dry_run           {int} NOT NULL,
        started_at        TEXT NOT NULL,     -- as recorded (ISO 8601)
        started_at_epoch  {real} NOT NULL,   -- the same instant, for range queries
        finished_at       TEXT,
        exit_code         {int},
        total_reclaimed_bytes {int},
        instances_ok      {int},
        instances_failed  {int},
        document          TEXT NOT NULL      -- the run JSON without "instances"
    )""",
    "CREATE INDEX runs_started_at ON runs (started_at_epoch)",
    """CREATE TABLE instance_results (
        run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        position  {int} NOT NULL,            -- order within the run document
        name      TEXT NOT NULL,
        hosts     TEXT NOT NULL,             -- JSON array
        playbook  TEXT,
        status    TEXT NOT NULL,
        error     TEXT,
        mode      TEXT,
        delete_untagged {int},
        storage_bytes_before {int}, storage_bytes_after {int}, reclaimed_bytes {int},
        fs_used_bytes_before {int}, fs_used_bytes_after {int},
        blobs_before {int}, blobs_after {int},
        blobs_deleted {int}, manifests_deleted {int},
        window_seconds {real}, gc_seconds {real}, duration_seconds {real},
        document  TEXT NOT NULL,             -- the whole instance JSON
        PRIMARY KEY (run_id, position)
    )""",
    "CREATE INDEX instance_results_name ON instance_results (name)",
)

# Retention (issue 12): how many tags a run deleted; the list itself stays in the JSON document.
# Rows recorded before it are NULL (unknown), not 0.
_V2_TAGS_DELETED = ("ALTER TABLE instance_results ADD COLUMN tags_deleted {int}",)

# Which instance last worked each storage (by its gcops-storage-id), so that a second
# instance on the same storage is noticed across runs (storage/identity.py).
_V3_STORAGE_OWNERS = (
    """CREATE TABLE storage_owners (
        storage_id  TEXT PRIMARY KEY,
        instance    TEXT NOT NULL,
        run_id      TEXT NOT NULL,
        seen_at     TEXT NOT NULL        -- ISO 8601, UTC
    )""",
)

MIGRATIONS: list[tuple[str, ...]] = [_V1_INITIAL_SCHEMA, _V2_TAGS_DELETED, _V3_STORAGE_OWNERS]


def schema_version() -> int:
    """The schema version this gcops writes."""
    return len(MIGRATIONS)


def render(statement: str, dialect: str) -> str:
    """``statement`` with its column types for ``dialect`` ("sqlite" or "postgresql")."""
    return statement.format(**TYPES[dialect])
