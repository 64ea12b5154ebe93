"""The outbox: a run the database cannot take is kept in state_dir and sent by the next command."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from gcops.state.history import Outbox, SqliteHistory, StorageOwner, db_path, record_or_keep
from tests.unit.test_history import RUN_1, RUN_2


def unusable_store(tmp_path) -> SqliteHistory:
    """A history whose folder cannot be created (a file stands in the way): every write fails."""
    (tmp_path / "blocked").write_text("not a folder")
    return SqliteHistory(tmp_path / "blocked" / "history.sqlite3")


def test_a_run_the_database_refuses_is_kept_then_sent_by_the_next_one(tmp_path):
    state = tmp_path / "state"
    owner = StorageOwner.at("gcops-storage-" + "e" * 32, "gitlab-prod", RUN_1["run_id"], datetime(2026, 11, 28))
    failed = record_or_keep(unusable_store(tmp_path), state, RUN_1, [owner])
    assert not failed.recorded and failed.waiting == 1
    assert RUN_1["run_id"] in failed.error and "cannot create state directory" in failed.error
    assert f"kept in {state / 'history-outbox'}" in failed.error and "\n" not in failed.error
    kept = json.loads((state / "history-outbox" / f"{RUN_1['run_id']}.json").read_text())
    assert kept["run"] == RUN_1

    store = SqliteHistory(db_path(state))
    assert not store.exists()
    done = record_or_keep(store, state, RUN_2)
    assert done.recorded and (done.sent_earlier, done.waiting) == (1, 0)
    assert store.load_runs() == [RUN_1, RUN_2]
    assert store.storage_owner(owner.storage_id)["run_id"] == RUN_1["run_id"]
    assert Outbox(state).waiting() == []


def test_sending_a_run_twice_stores_it_once(tmp_path):
    # gcops killed after the database committed, before the spool file was removed
    store = SqliteHistory(db_path(tmp_path))
    store.record_run(RUN_1)
    Outbox(tmp_path).keep(RUN_1)
    sending = Outbox(tmp_path).send(store)
    assert (sending.sent, sending.waiting, sending.error) == (1, 0, None)
    assert store.load_runs() == [RUN_1]


def test_a_damaged_kept_run_is_set_aside_and_the_others_are_sent(tmp_path):
    outbox = Outbox(tmp_path)
    outbox.keep(RUN_2)
    (outbox.dir / "20261101T000000Z-dead.json").write_text("{not json")
    store = SqliteHistory(db_path(tmp_path))
    sending = outbox.send(store)
    assert sending.sent == 1 and sending.waiting == 0 and "set aside" in sending.error
    assert (outbox.dir / "20261101T000000Z-dead.unreadable").exists()
    assert store.load_runs() == [RUN_2]
    assert outbox.send(store).error is None          # said once, not at every run


def test_kept_runs_wait_while_the_database_is_unusable(tmp_path):
    outbox = Outbox(tmp_path / "state")
    outbox.keep(RUN_1)
    outbox.keep(RUN_2)
    sending = outbox.send(unusable_store(tmp_path))
    assert (sending.sent, sending.waiting) == (0, 2) and "cannot create state directory" in sending.error
    assert [p.name for p in outbox.waiting()] == [f"{RUN_1['run_id']}.json", f"{RUN_2['run_id']}.json"]
    assert oct(outbox.waiting()[0].stat().st_mode & 0o777) == "0o600"
