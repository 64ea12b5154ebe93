"""The embedded history: SQLite at ``<state_dir>/history.sqlite3`` (the default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gcops.state.history import migrations
from gcops.state.history.store import HistoryError, SqlHistory

DB_NAME = "history.sqlite3"


def db_path(state_dir: Path) -> Path:
    return Path(state_dir) / DB_NAME


def _user_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


class SqliteHistory(SqlHistory):
    """The history in one SQLite file; created (with its folder) on the first write."""

    driver_error = sqlite3.Error
    rejections = (sqlite3.DataError, sqlite3.IntegrityError)
    begin = "BEGIN IMMEDIATE"   # take the write lock at once: concurrent writers queue, never deadlock

    def __init__(self, path: Path):
        self.path = Path(path)
        self.where = str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def _newer_schema(self, version: int) -> HistoryError:
        return HistoryError(f"{self.path}: history schema version {version} is newer than this gcops "
                            f"knows ({migrations.schema_version()}); upgrade gcops")

    def _open(self, *, read_only: bool) -> sqlite3.Connection:
        """An autocommit connection (transactions are explicit); HistoryError if unusable."""
        try:
            if read_only:
                db = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True,
                                     timeout=30, isolation_level=None)
            else:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            _user_version(db)  # fails here on a file that is not a database
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot open history database: {exc}") from None
        db.row_factory = sqlite3.Row
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Apply every pending migration, each in its own transaction."""
        known = migrations.schema_version()
        while True:
            db.execute("BEGIN IMMEDIATE")  # re-read the version under the write lock
            try:
                version = _user_version(db)
                if version > known:
                    raise self._newer_schema(version)
                if version == known:
                    db.execute("COMMIT")
                    return
                for statement in migrations.MIGRATIONS[version]:
                    db.execute(migrations.render(statement, "sqlite"))
                db.execute(f"PRAGMA user_version = {version + 1:d}")
                db.execute("COMMIT")
            except BaseException:
                db.rollback()
                raise

    def _connect(self, *, for_writing: bool) -> sqlite3.Connection:
        """Open (creating when writing) and migrate the database; HistoryError otherwise."""
        if for_writing:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{self.path.parent}: cannot create state directory: {exc.strerror}") from None

        def prepare(db: sqlite3.Connection) -> sqlite3.Connection:
            version = _user_version(db)
            if version > migrations.schema_version():
                raise self._newer_schema(version)
            if version < migrations.schema_version():
                if not for_writing:  # an older schema must be upgraded before reading it
                    db.close()
                    db = self._open(read_only=False)
                try:
                    self._migrate(db)
                except BaseException:
                    db.close()      # the reopened one (closing the first again is harmless)
                    raise
            return db

        return self._prepared(self._open(read_only=not for_writing), prepare)
