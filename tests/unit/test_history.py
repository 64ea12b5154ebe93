"""The run history: round trips, filters, schema versions and migrations."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from gcops.state.history import HistoryError, SqliteHistory, db_path, migrations, schema_version
from gcops.state.history.records import INSTANCE_COLUMNS, instance_rows, run_row


def record_run(state_dir, run):
    SqliteHistory(db_path(state_dir)).record_run(run)


def load_runs(state_dir, **filters):
    return SqliteHistory(db_path(state_dir)).load_runs(**filters)


def instance_result(name: str, reclaimed: int | None, status: str = "ok") -> dict:
    known = reclaimed is not None
    return {
        "name": name, "hosts": [f"{name}.example.com"], "playbook": "omnibus",
        "status": status, "error": None if status == "ok" else "registry config unreadable",
        "mode": "readonly", "delete_untagged": False,
        "storage_bytes_before": 10_000_000_000 if known else None,
        "storage_bytes_after": 10_000_000_000 - reclaimed if known else None,
        "reclaimed_bytes": reclaimed,
        "fs_used_bytes_before": 50_000_000_000 if known else None,
        "fs_used_bytes_after": 50_000_000_000 - reclaimed if known else None,
        "blobs_before": 1200 if known else None, "blobs_after": 1000 if known else None,
        "blobs_deleted": 200 if known else None, "manifests_deleted": 12 if known else None,
        "window_seconds": 42.5 if known else None, "gc_seconds": 30.25 if known else None,
        "duration_seconds": 61.0,
    }


def run_document(run_id: str, started_at: str, *results: dict) -> dict:
    known = [r["reclaimed_bytes"] for r in results if r["reclaimed_bytes"] is not None]
    return {
        "run_id": run_id, "command": "run", "dry_run": False,
        "started_at": started_at, "finished_at": started_at.replace(":00Z", ":59Z"),
        "exit_code": 0 if all(r["status"] == "ok" for r in results) else 1,
        "instances": list(results),
        "totals": {"reclaimed_bytes": sum(known),
                   "instances_ok": sum(r["status"] == "ok" for r in results),
                   "instances_failed": sum(r["status"] == "failed" for r in results)},
    }


RUN_1 = run_document("20261128T020000Z-aaaa", "2026-11-28T02:00:00Z",
                     instance_result("gitlab-prod", 3_000_000_000),
                     instance_result("registry-ha", None, status="failed"))
RUN_2 = run_document("20261129T020000Z-bbbb", "2026-11-29T02:00:00Z",
                     instance_result("gitlab-prod", 1_500_000_000))


def test_recorded_runs_load_back_equal_oldest_first(tmp_path):
    state_dir = tmp_path / "state"  # created on first record
    record_run(state_dir, RUN_2)
    record_run(state_dir, RUN_1)

    assert load_runs(state_dir) == [RUN_1, RUN_2]
    assert (state_dir / "history.sqlite3").is_file()


def test_figures_are_real_columns(tmp_path):
    record_run(tmp_path, RUN_1)
    record_run(tmp_path, RUN_2)

    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        total, unknown = db.execute(
            "SELECT SUM(reclaimed_bytes), COUNT(*) - COUNT(reclaimed_bytes) FROM instance_results"
        ).fetchone()
    assert (total, unknown) == (4_500_000_000, 1)


def test_a_run_sent_twice_is_stored_once_and_another_run_under_its_id_is_refused(tmp_path):
    """The outbox may send a run twice (killed between commit and unlink): stored once. A different run
    under the same id (another machine's, same second, same suffix) must not overwrite it, silently or not."""
    from gcops.state.history.store import RecordRejected

    record_run(tmp_path, RUN_1)
    record_run(tmp_path, json.loads(json.dumps(RUN_1)))
    assert load_runs(tmp_path) == [RUN_1]
    other = {**RUN_1, "exit_code": 3, "instances": RUN_1["instances"][:1]}
    with pytest.raises(RecordRejected, match="already recorded with other content"):
        record_run(tmp_path, other)
    assert load_runs(tmp_path) == [RUN_1]


def test_a_refused_record_is_set_aside_and_never_blocks_the_runs_after_it(tmp_path):
    from gcops.state.history import Outbox

    store = SqliteHistory(db_path(tmp_path))
    store.record_run(RUN_1)
    outbox = Outbox(tmp_path)
    outbox.keep({**RUN_1, "exit_code": 3})          # the same id, other content: the database refuses it
    outbox.keep(RUN_2)
    sending = outbox.send(store)
    assert sending.sent == 1 and sending.waiting == 0 and ".rejected" in sending.error
    assert [r["run_id"] for r in store.load_runs()] == [RUN_1["run_id"], RUN_2["run_id"]]
    assert list(outbox.dir.glob("*.rejected"))


def test_a_nul_in_an_error_is_stored_not_refused():
    run = {**RUN_2, "instances": [{**RUN_2["instances"][0], "error": "host said a\x00b"}]}
    texts = [value for row in instance_rows(run) for value in row if isinstance(value, str)]
    assert "host said a\ufffdb" in texts and not any("\x00" in value for value in texts)


def test_unknown_fields_survive_a_round_trip(tmp_path):
    future = {**RUN_2, "operator": "alice",
              "instances": [{**RUN_2["instances"][0], "new_figure": 7}]}
    record_run(tmp_path, future)

    assert load_runs(tmp_path) == [future]


def test_missing_history_is_empty(tmp_path):
    assert load_runs(tmp_path / "nowhere") == []


def test_since_and_until_select_by_start_time(tmp_path):
    record_run(tmp_path, RUN_1)
    record_run(tmp_path, RUN_2)
    boundary = datetime(2026, 11, 29, 2, 0, 0, tzinfo=timezone.utc)

    assert load_runs(tmp_path, since=boundary) == [RUN_2]          # since is inclusive
    assert load_runs(tmp_path, until=boundary) == [RUN_1]          # until is exclusive
    assert load_runs(tmp_path, since=datetime(2026, 11, 28, 3)) == [RUN_2]  # naive = UTC
    assert load_runs(tmp_path, since=datetime(2026, 12, 1, tzinfo=timezone.utc)) == []


def test_instance_filter_keeps_only_that_instance(tmp_path):
    record_run(tmp_path, RUN_1)
    record_run(tmp_path, RUN_2)

    runs = load_runs(tmp_path, instance="registry-ha")

    assert [run["run_id"] for run in runs] == [RUN_1["run_id"]]
    assert [r["name"] for r in runs[0]["instances"]] == ["registry-ha"]
    assert runs[0]["totals"] == {"reclaimed_bytes": 0, "instances_ok": 0, "instances_failed": 1}
    assert [run["run_id"] for run in load_runs(tmp_path, instance="gitlab-prod")] == [
        RUN_1["run_id"], RUN_2["run_id"]]
    assert load_runs(tmp_path, instance="unknown") == []


def test_schema_version_is_set(tmp_path):
    record_run(tmp_path, RUN_1)

    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == schema_version() == len(migrations.MIGRATIONS)


def test_newer_schema_is_refused(tmp_path):
    record_run(tmp_path, RUN_1)
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")

    with pytest.raises(HistoryError, match="schema version 99 is newer"):
        load_runs(tmp_path)
    with pytest.raises(HistoryError, match="upgrade gcops"):
        record_run(tmp_path, RUN_2)


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "history.sqlite3").write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(HistoryError, match="history.sqlite3") as caught:
        load_runs(tmp_path)
    assert "\n" not in str(caught.value)


def test_appended_migration_upgrades_an_existing_database(tmp_path, monkeypatch):
    record_run(tmp_path, RUN_1)  # a database at the current version
    base = schema_version()
    v_next = ("ALTER TABLE runs ADD COLUMN operator TEXT", "UPDATE runs SET operator = 'unknown'")
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, v_next])

    assert load_runs(tmp_path) == [RUN_1]  # reading upgrades
    record_run(tmp_path, RUN_2)
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == base + 1
        assert db.execute("SELECT operator FROM runs ORDER BY run_id").fetchall() == [
            ("unknown",), (None,)]


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    record_run(tmp_path, RUN_1)
    base = schema_version()
    v_broken = ("ALTER TABLE runs ADD COLUMN operator TEXT", "SELECT * FROM no_such_table")
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, v_broken])
    with pytest.raises(HistoryError, match="no_such_table"):
        load_runs(tmp_path)
    monkeypatch.undo()

    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == base
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert "operator" not in columns
    assert load_runs(tmp_path) == [RUN_1]


def test_tags_deleted_is_a_column_and_older_databases_upgrade_to_unknown(tmp_path):
    # a database written by a gcops from before retention: schema version 1, no tags_deleted column
    old_run = json.loads(json.dumps(RUN_1))
    for result in old_run["instances"]:
        result.pop("tags_deleted", None)
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        for statement in migrations.MIGRATIONS[0]:
            db.execute(migrations.render(statement, "sqlite"))
        db.execute("PRAGMA user_version = 1")
        db.execute(f"INSERT INTO runs VALUES ({', '.join('?' * 11)})", run_row(old_run))
        columns = ("run_id", "position", *INSTANCE_COLUMNS[:-1], "document")
        db.executemany(f"INSERT INTO instance_results ({', '.join(columns)}) VALUES ({', '.join('?' * 22)})",
                       [row[:-2] + row[-1:] for row in instance_rows(old_run)])

    new_run = json.loads(json.dumps(RUN_2))
    new_run["instances"][0]["tags_deleted"] = [{"repository": "g/app", "tag": "dev-1", "digest": "sha256:" + "a" * 64},
                                               {"repository": "g/app", "tag": "dev-2", "digest": "sha256:" + "b" * 64}]
    record_run(tmp_path, new_run)        # upgrades the database, then records
    with sqlite3.connect(tmp_path / "history.sqlite3") as db:
        counts = db.execute("SELECT run_id, tags_deleted FROM instance_results WHERE position = 0"
                            " ORDER BY run_id").fetchall()
    assert counts == [(old_run["run_id"], None), (new_run["run_id"], 2)]
    runs = load_runs(tmp_path)
    assert runs[0] == old_run and "tags_deleted" not in runs[0]["instances"][0]
    assert runs[1]["instances"][0]["tags_deleted"] == new_run["instances"][0]["tags_deleted"]
