"""``gcops history import``: copy a SQLite history into the shared PostgreSQL one, once."""

from __future__ import annotations

from pathlib import Path

from gcops.errors import UsageError
from gcops.state.history import SqliteHistory, db_path, open_history


class ImportRefused(UsageError):
    """The import cannot be done as asked (exit 2, nothing copied); one line for the user."""


def import_history(settings, source: Path | None) -> str:
    """Copy every run and storage owner of the SQLite history ``source`` (default: the one in
    state_dir) into the configured PostgreSQL history, in one transaction; runs whose run_id is
    already there are left as they are. Gives one line saying what was copied.

    Raises ImportRefused (no PostgreSQL history configured, no such file), HistoryError when
    either database cannot be used.
    """
    if not settings.history:
        raise ImportRefused("history import copies into PostgreSQL, but [gcops] history is not set "
                            "(the SQLite history in state_dir is already the one in use)")
    path = Path(source) if source is not None else db_path(settings.state_dir)
    if not path.is_file():
        raise ImportRefused(f"--from {path}: no such file (a SQLite history, e.g. <state_dir>/history.sqlite3)")
    origin = SqliteHistory(path)
    runs = origin.load_runs()
    owners = origin.all_storage_owners()
    target = open_history(settings)
    added = target.import_runs(runs, owners)
    return (f"imported {added} run(s) from {path} into {target.where}; "
            f"{len(runs) - added} already there")
