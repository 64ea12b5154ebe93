"""The run history: one interface (store.SqlHistory), two databases.

- SQLite at ``<state_dir>/history.sqlite3`` (the default, embedded);
- PostgreSQL when ``[gcops] history = "postgresql://..."``: several gcops machines
  and per-host timers share one history, one report and one shared-storage check.

Only this package speaks SQL. The schema is the same versioned migrations for
both (migrations.py). A run is recorded through the outbox (outbox.py): written
to the state directory first, then sent, so a database that is down loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gcops.state.history import owner_copy
from gcops.state.history.migrations import MIGRATIONS, schema_version
from gcops.state.history.outbox import OUTBOX_DIR, Outbox, Sending
from gcops.state.history.records import StorageOwner
from gcops.state.history.sqlite import DB_NAME, SqliteHistory, db_path
from gcops.state.history.store import HistoryError, SqlHistory

PASSWORD_ENV = "GCOPS_HISTORY_PASSWORD"

__all__ = ["DB_NAME", "MIGRATIONS", "OUTBOX_DIR", "PASSWORD_ENV", "HistoryError", "Outbox", "Recording",
           "Sending", "SqlHistory", "owner_copy", "SqliteHistory", "StorageOwner", "db_path", "open_history",
           "record_or_keep", "schema_version"]


def open_history(settings, env: Mapping[str, str] = os.environ) -> SqlHistory:
    """The history [gcops] names: PostgreSQL for a ``history`` URL (password from
    ``history_password_file``, else $GCOPS_HISTORY_PASSWORD, else libpq's own), else SQLite in
    ``state_dir``. Nothing is contacted yet."""
    if not getattr(settings, "history", None):
        return SqliteHistory(db_path(settings.state_dir))
    from gcops.state.history.postgresql import PostgresHistory

    secret = getattr(settings, "history_password_file", None)
    password = secret.value if secret is not None else env.get(PASSWORD_ENV) or None
    return PostgresHistory(settings.history, password)


@dataclass(frozen=True)
class Recording:
    """How recording one run went: ``error`` None when it is in the database."""

    sent_earlier: int               # runs kept by earlier commands, sent now
    waiting: int                    # runs still in the outbox afterwards (this one included when it failed)
    error: str | None = None        # one line for the user: what failed, where the run is kept
    warning: str | None = None      # this run is recorded, but another kept run could not be sent

    @property
    def recorded(self) -> bool:
        return self.error is None


def record_or_keep(store: SqlHistory, state_dir: Path, run: dict,
                   owners: Iterable[StorageOwner] = ()) -> Recording:
    """Record ``run`` in ``store`` through the outbox: kept in ``state_dir`` first, then everything
    waiting is sent, oldest first. Never raises for the database: a failure is in ``error``."""
    outbox = Outbox(state_dir)
    owners = list(owners)
    try:
        owner_copy.remember(state_dir, {o.storage_id: {"instance": o.instance, "run_id": o.run_id,
                                                       "seen_at": o.seen_at} for o in owners})
    except OSError:
        pass            # the copy is a fallback; the outbox below holds the same owners
    try:
        outbox.keep(run, owners)
    except (OSError, ValueError) as exc:
        try:  # no spool (state directory unwritable): straight to the database, or lost
            store.record_run(run, owners)
        except (HistoryError, ValueError) as exc2:
            return Recording(0, len(outbox.waiting()), f"run {run.get('run_id')} NOT recorded: {exc2}; "
                                                       f"and it could not be kept in {outbox.dir}: {exc}")
        sending = outbox.send(store)
        return Recording(sending.sent, sending.waiting, sending.error)
    sending = outbox.send(store)
    kept = outbox.dir / f"{run['run_id']}.json"
    rejected = kept.with_suffix(".rejected")
    if rejected.exists():
        return Recording(sending.sent, sending.waiting, f"run {run['run_id']} not recorded: {sending.error}")
    mine_sent = not kept.exists()
    earlier = sending.sent - int(mine_sent)
    if mine_sent:   # an error here is about another kept run (set aside, or still waiting)
        return Recording(earlier, sending.waiting, warning=sending.error)
    return Recording(earlier, sending.waiting,
                     f"run {run['run_id']} not recorded: {sending.error}; kept in {outbox.dir} "
                     f"({sending.waiting} run(s) waiting), sent by the next gcops run")
