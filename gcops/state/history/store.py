"""What every history database does, in SQL both SQLite and PostgreSQL run.

A backend (sqlite.py, postgresql.py) gives a connected, migrated DB-API
connection and its driver's error class; this class writes and reads runs and
storage owners through it. Statements are written with ``?`` placeholders and
converted for drivers that take ``%s``.
"""

from __future__ import annotations

from gcops.errors import StateError

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from gcops.state.history.records import (
    INSTANCE_COLUMNS, RESULT_SELECT, RUN_COLUMNS, RUN_SELECT, StorageOwner, instance_from_values, instance_rows,
    run_from_values, run_row, runs_query,
)


class HistoryError(StateError):
    """The history database cannot be used; the message is one line for the user (never a password)."""


class RecordRejected(HistoryError):
    """The database refused this record itself (not the connection): sending it again cannot succeed."""


_RUN_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")
INSERT_RUN = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
INSERT_RESULT = (f"INSERT INTO instance_results (run_id, position, {', '.join(INSTANCE_COLUMNS)}, document)"
                 f" VALUES ({', '.join('?' * (len(INSTANCE_COLUMNS) + 3))})")
# an older record of a storage (an outbox sent late, an import) never replaces a newer one
UPSERT_OWNER = ("INSERT INTO storage_owners (storage_id, instance, run_id, seen_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (storage_id) DO UPDATE SET instance = excluded.instance,"
                " run_id = excluded.run_id, seen_at = excluded.seen_at"
                " WHERE excluded.seen_at >= storage_owners.seen_at")


class SqlHistory:
    """Runs and storage owners in one SQL database. Subclasses set ``where``, ``driver_error``,
    ``begin`` and implement ``_connect`` (and ``_many`` / ``placeholders`` when their driver differs)."""

    where: str = ""                 # how messages name the database (never with a password)
    driver_error: type[Exception] = Exception
    rejections: tuple[type[Exception], ...] = ()    # driver errors about the record, not the database
    begin = "BEGIN"
    paramstyle = "qmark"            # or "format" (%s)

    # --- what a backend provides -------------------------------------------------------
    def _connect(self, *, for_writing: bool):
        """A connected, migrated connection in autocommit mode, rows readable by column name;
        HistoryError when the database cannot be used."""
        raise NotImplementedError

    def exists(self) -> bool:
        """False only when it is certain no run was ever recorded (no database yet)."""
        return True

    def _prepared(self, db, prepare):
        """`db` once `prepare(db)` (the migrations) has run, or the connection it gives instead; on failure
        the connection is closed and a driver error becomes HistoryError."""
        try:
            return prepare(db) or db
        except self.driver_error as exc:
            db.close()
            raise HistoryError(f"{self.where}: cannot use history database: {self.describe(exc)}") from None
        except BaseException:
            db.close()
            raise

    def describe(self, exc: Exception) -> str:
        """One line about a driver error."""
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    # --- shared SQL ------------------------------------------------------------------------
    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.paramstyle == "format" else statement

    def _execute(self, db, statement: str, params: Sequence = ()):
        return db.execute(self._sql(statement), tuple(params))

    def _many(self, db, statement: str, rows: list[tuple]) -> None:
        if rows:
            db.executemany(self._sql(statement), rows)

    def _tuples(self, db, statement: str, params: Sequence = ()) -> list[tuple]:
        """All rows of a query as plain tuples (read by position: quick over many rows)."""
        cursor = db.cursor()
        cursor.row_factory = None
        return cursor.execute(self._sql(statement), tuple(params)).fetchall()

    @contextmanager
    def _session(self, doing: str, *, for_writing: bool) -> Iterator:
        """A connection; a driver error inside becomes HistoryError("<where>: cannot <doing>: ...")."""
        db = self._connect(for_writing=for_writing)
        try:
            yield db
        except self.driver_error as exc:
            kind = RecordRejected if isinstance(exc, self.rejections) else HistoryError
            raise kind(f"{self.where}: cannot {doing}: {self.describe(exc)}") from None
        finally:
            try:
                db.close()
            except self.driver_error:
                pass

    @contextmanager
    def _transaction(self, db) -> Iterator[None]:
        db.execute(self.begin)
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

    def _write_run(self, db, run: dict, *, replace: bool) -> bool:
        """Insert the run and its results; with ``replace`` an earlier record of the same run_id is
        replaced, else it is kept. True when this run was written."""
        insert = INSERT_RUN + (f" ON CONFLICT (run_id) DO UPDATE SET {_RUN_UPDATE}" if replace
                               else " ON CONFLICT (run_id) DO NOTHING")
        # the run row first: it takes the row lock, so a concurrent writer of the same run waits here
        written = self._execute(db, insert, run_row(run)).rowcount == 1
        if written:
            self._execute(db, "DELETE FROM instance_results WHERE run_id = ?", (run["run_id"],))
            self._many(db, INSERT_RESULT, instance_rows(run))
        return written

    def _write_owners(self, db, owners: Iterable[StorageOwner]) -> None:
        self._many(db, UPSERT_OWNER, [(o.storage_id, o.instance, o.run_id, o.seen_at) for o in owners])

    # --- the interface ---------------------------------------------------------------------
    def record_run(self, run: dict, owners: Iterable[StorageOwner] = ()) -> None:
        """Store ``run`` (a SPEC run document) and the storages its instances worked, in one
        transaction. Sending it twice stores it once; a different run under the same run_id (another
        machine's, started the same second with the same random suffix) is never overwritten.

        Raises ValueError for a document without run_id/started_at, RecordRejected when the database
        refuses this record, HistoryError when the database cannot be used.
        """
        row = run_row(run)  # ValueError before anything is opened
        with self._session(f"record run {run['run_id']}", for_writing=True) as db:
            with self._transaction(db):
                if not self._write_run(db, run, replace=False):
                    stored = self._tuples(db, "SELECT document FROM runs WHERE run_id = ?", (run["run_id"],))
                    if not stored or stored[0][0] != row[-1]:
                        raise RecordRejected(f"{self.where}: run {run['run_id']} is already recorded with "
                                             "other content (another gcops' run with the same id); not "
                                             "overwritten")
                self._write_owners(db, owners)

    def import_runs(self, runs: Iterable[dict], owners: Iterable[StorageOwner]) -> int:
        """Copy runs recorded elsewhere, in one transaction; a run_id already here is left as it is.
        Gives how many runs were new. Raises HistoryError."""
        with self._session("import runs", for_writing=True) as db:
            with self._transaction(db):
                added = sum(self._write_run(db, run, replace=False) for run in runs)
                self._write_owners(db, owners)
        return added

    def record_storage_owners(self, owners: Iterable[StorageOwner]) -> None:
        """Remember which instance worked each storage (a newer record wins). Raises HistoryError."""
        with self._session("record storage owners", for_writing=True) as db:
            with self._transaction(db):
                self._write_owners(db, owners)

    def load_runs(self, *, since: datetime | None = None, until: datetime | None = None,
                  instance: str | None = None) -> list[dict]:
        """Run documents started in [since, until), oldest first; [] when there is no history yet.

        Naive datetimes are UTC. With ``instance``, each run keeps only that instance's
        result (and totals are recomputed over it); runs without it are left out.
        Raises HistoryError when the database cannot be read.
        """
        if not self.exists():
            return []
        where, params = runs_query(since, until, instance)
        results_sql = (f"SELECT {', '.join(RESULT_SELECT)} FROM instance_results"
                       f" WHERE run_id IN (SELECT run_id FROM runs{where})")
        results_params = list(params)
        if instance is not None:
            results_sql += " AND name = ?"
            results_params.append(instance)
        with self._session("read history", for_writing=False) as db:
            # two queries, whatever the number of runs: a report over years of nightly runs stays fast
            by_run: dict[str, list] = {}
            for row in self._tuples(db, results_sql + " ORDER BY run_id, position", results_params):
                by_run.setdefault(row[0], []).append(row)
            rows = self._tuples(db, f"SELECT {', '.join(RUN_SELECT)} FROM runs{where}"
                                    " ORDER BY started_at_epoch, run_id", params)
            try:
                return [run_from_values(row, [instance_from_values(r) for r in by_run.get(row[0], ())],
                                        filtered=instance is not None) for row in rows]
            except ValueError as exc:
                raise HistoryError(f"{self.where}: cannot read history: {exc}") from None

    def storage_owners(self, storage_ids: Iterable[str]) -> dict[str, dict]:
        """{storage_id: {"instance", "run_id", "seen_at"}} for the ids that have an owner ({} when
        there is no history yet). Raises HistoryError when the database cannot be read."""
        ids = list(dict.fromkeys(storage_ids))
        if not ids or not self.exists():
            return {}
        with self._session("read storage owners", for_writing=False) as db:
            rows = self._execute(db, "SELECT storage_id, instance, run_id, seen_at FROM storage_owners"
                                     f" WHERE storage_id IN ({', '.join('?' * len(ids))})", ids).fetchall()
        return {row["storage_id"]: {"instance": row["instance"], "run_id": row["run_id"],
                                    "seen_at": row["seen_at"]} for row in rows}

    def storage_owner(self, storage_id: str) -> dict | None:
        """{"instance", "run_id", "seen_at"} of the instance that last worked this storage, or None."""
        return self.storage_owners([storage_id]).get(storage_id)

    def all_storage_owners(self) -> list[StorageOwner]:
        """Every storage owner recorded (for an import). Raises HistoryError."""
        if not self.exists():
            return []
        with self._session("read storage owners", for_writing=False) as db:
            rows = self._execute(db, "SELECT storage_id, instance, run_id, seen_at FROM storage_owners"
                                     " ORDER BY storage_id").fetchall()
        return [StorageOwner(r["storage_id"], r["instance"], r["run_id"], r["seen_at"]) for r in rows]
