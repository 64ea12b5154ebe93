"""The history against both databases: SQLite in state_dir and a real PostgreSQL server (issue 20).

The same interface, the same migrations, the same documents back; PostgreSQL also
under concurrent writers (several processes at once), and `gcops history import`.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest

from gcops.state.history import HistoryError, SqliteHistory, StorageOwner, db_path, migrations, schema_version
from gcops.state.history.postgresql import PostgresHistory
from tests.harness.gcops_cli import REPO, gcops_env, json_doc, run_gcops
from tests.unit.test_history import RUN_1, RUN_2, instance_result, run_document

BIG = run_document("20261130T020000Z-cccc", "2026-11-30T02:00:00Z",
                   {**instance_result("huge", 9_000_000_000_000), "operator": "alice"})


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteHistory(db_path(tmp_path / "state"))
    db = request.getfixturevalue("postgres_db")
    return PostgresHistory(db.url, db.password)


def test_both_databases_give_back_the_same_documents(store):
    assert store.load_runs() == []
    for run in (RUN_2, BIG, RUN_1):
        store.record_run(run)
    store.record_run(RUN_1)                  # recorded again: replaced, not doubled
    assert store.load_runs() == [RUN_1, RUN_2, BIG]
    assert store.load_runs(since=datetime(2026, 11, 29, 2, tzinfo=timezone.utc)) == [RUN_2, BIG]
    assert store.load_runs(until=datetime(2026, 11, 29, 2)) == [RUN_1]
    only = store.load_runs(instance="registry-ha")
    assert [r["run_id"] for r in only] == [RUN_1["run_id"]] and len(only[0]["instances"]) == 1
    assert only[0]["totals"] == {"reclaimed_bytes": 0, "instances_ok": 0, "instances_failed": 1}


def test_storage_owners_the_newer_record_wins(store):
    sid = "gcops-storage-" + "c" * 32
    newer = StorageOwner.at(sid, "b", "run-2", datetime(2026, 11, 2, tzinfo=timezone.utc))
    older = StorageOwner.at(sid, "a", "run-1", datetime(2026, 11, 1, tzinfo=timezone.utc))
    store.record_run(RUN_1, [newer])
    store.record_storage_owners([older])     # an outbox sent late must not move ownership back
    assert store.storage_owners([sid, "gcops-storage-none"]) == {
        sid: {"instance": "b", "run_id": "run-2", "seen_at": "2026-11-02T00:00:00Z"}}


def test_postgresql_schema_is_the_versioned_migrations(postgres_db):
    store = PostgresHistory(postgres_db.url, postgres_db.password)
    store.record_run(RUN_1)
    sql = postgres_db.server.sql
    assert sql("SELECT version FROM gcops_schema", database=postgres_db.name) == [(schema_version(),)]
    types = dict(sql("SELECT column_name, data_type FROM information_schema.columns"
                     " WHERE table_name = 'instance_results'", database=postgres_db.name))
    assert types["reclaimed_bytes"] == "bigint" and types["tags_deleted"] == "bigint"
    sql("UPDATE gcops_schema SET version = 99", database=postgres_db.name)
    with pytest.raises(HistoryError, match="schema version 99 is newer than this gcops knows"):
        PostgresHistory(postgres_db.url, postgres_db.password).load_runs()


def test_postgresql_appended_migration_upgrades_and_a_broken_one_changes_nothing(postgres_db, monkeypatch):
    PostgresHistory(postgres_db.url, postgres_db.password).record_run(RUN_1)
    base = schema_version()
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS,
                                                   ("ALTER TABLE runs ADD COLUMN operator TEXT",
                                                    "SELECT * FROM no_such_table")])
    with pytest.raises(HistoryError, match="no_such_table"):
        PostgresHistory(postgres_db.url, postgres_db.password).load_runs()
    sql = postgres_db.server.sql
    assert sql("SELECT version FROM gcops_schema", database=postgres_db.name) == [(base,)]
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS[:base],
                                                   ("ALTER TABLE runs ADD COLUMN operator {int}",)])
    assert PostgresHistory(postgres_db.url, postgres_db.password).load_runs() == [RUN_1]
    assert sql("SELECT version FROM gcops_schema", database=postgres_db.name) == [(base + 1,)]


WRITER = textwrap.dedent("""
    import sys
    from gcops.state.history.postgresql import PostgresHistory
    from tests.unit.test_history import instance_result, run_document
    url, password, tag = sys.argv[1:4]
    store = PostgresHistory(url, password)
    shared = run_document("20261201T000000Z-same", "2026-12-01T00:00:00Z", instance_result("shared", 1))
    for i in range(40):
        store.record_run(run_document(f"20261201T00{i:02d}00Z-{tag}", f"2026-12-01T00:{i:02d}:00Z",
                                      instance_result(f"{tag}-{i}", i), instance_result("x", 1)))
        store.record_run(shared)         # the same run sent by both at once: stored once
""")


def test_concurrent_writers_from_several_processes_lose_and_duplicate_nothing(postgres_db):
    # fresh database: the processes also race to create the schema
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, postgres_db.url, postgres_db.password, tag],
                              cwd=str(REPO), env=gcops_env(), stderr=subprocess.PIPE, text=True)
             for tag in ("aaaa", "bbbb", "cccc")]
    for proc in procs:
        assert proc.wait(120) == 0, proc.stderr.read()
    runs = PostgresHistory(postgres_db.url, postgres_db.password).load_runs()
    ids = [r["run_id"] for r in runs]
    assert len(ids) == len(set(ids)) == 3 * 40 + 1
    assert all(len(r["instances"]) == 2 for r in runs if not r["run_id"].endswith("same"))
    counts = postgres_db.server.sql("SELECT count(*) FROM instance_results", database=postgres_db.name)
    assert counts == [(3 * 40 * 2 + 1,)]


def write_settings(tmp_path, db, *, state="state") -> "Path":
    secret = tmp_path / "history.secret"
    secret.write_text(db.password + "\n")
    secret.chmod(0o600)
    config = tmp_path / "gcops.toml"
    config.write_text(f'[gcops]\nstate_dir = "{tmp_path / state}"\nhistory = "{db.url}"\n'
                      f'history_password_file = "{secret}"\n')
    return config


def test_history_import_copies_a_sqlite_history_once(postgres_db, tmp_path):
    old = SqliteHistory(db_path(tmp_path / "state"))
    sid = "gcops-storage-" + "d" * 32
    old.record_run(RUN_1, [StorageOwner.at(sid, "gitlab-prod", RUN_1["run_id"], datetime(2026, 11, 28))])
    old.record_run(RUN_2)
    config = write_settings(tmp_path, postgres_db)
    PostgresHistory(postgres_db.url, postgres_db.password).record_run(BIG)    # another machine's run

    first = run_gcops("-v", "--config", str(config), "history", "import")
    assert first.returncode == 0, first.stderr
    assert "imported 2 run(s)" in first.stdout and "0 already there" in first.stdout
    again = run_gcops("--config", str(config), "history", "import", "--from", str(db_path(tmp_path / "state")))
    assert again.returncode == 0 and "imported 0 run(s)" in again.stdout and "2 already there" in again.stdout
    report = run_gcops("-v", "--config", str(config), "report", "--format", "json")
    assert [r["run_id"] for r in json_doc(report)["runs"]] == [RUN_1["run_id"], RUN_2["run_id"], BIG["run_id"]]
    assert PostgresHistory(postgres_db.url, postgres_db.password).storage_owner(sid)["instance"] == "gitlab-prod"
    for proc in (first, again, report):
        assert postgres_db.password not in proc.stdout + proc.stderr

    missing = run_gcops("--config", str(config), "history", "import", "--from", str(tmp_path / "nope.sqlite3"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
    local_only = tmp_path / "local.toml"
    local_only.write_text(f'[gcops]\nstate_dir = "{tmp_path / "state"}"\n')
    refused = run_gcops("--config", str(local_only), "history", "import")
    assert refused.returncode == 2 and "[gcops] history is not set" in refused.stderr


def test_a_password_in_the_url_is_refused_without_showing_it(postgres_db, tmp_path):
    url = postgres_db.url.replace("gcops@", f"gcops:{postgres_db.password}@")
    config = tmp_path / "gcops.toml"
    config.write_text(f'[gcops]\nstate_dir = "{tmp_path}"\nhistory = "{url}"\n')
    proc = run_gcops("--config", str(config), "report")
    assert proc.returncode == 2, proc.stderr
    assert "at 'gcops.history'" in proc.stderr and "password" in proc.stderr and proc.stderr.count("\n") == 1
    verbose = run_gcops("-v", "--config", str(config), "run")
    assert verbose.returncode == 2
    assert postgres_db.password not in proc.stdout + proc.stderr + verbose.stdout + verbose.stderr


def test_report_names_an_unreachable_database_in_one_line(postgres_db, tmp_path):
    config = write_settings(tmp_path, postgres_db)
    postgres_db.server.stop()
    proc = run_gcops("--config", str(config), "report", "--format", "json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"{postgres_db.url}: cannot connect" in proc.stderr and proc.stderr.count("\n") == 1
    verbose = run_gcops("-v", "--config", str(config), "report")
    assert postgres_db.password not in proc.stderr + verbose.stderr
