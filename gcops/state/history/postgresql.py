"""The shared history: PostgreSQL through psycopg 3, for several gcops machines and per-host timers.

The URL never carries a password (the config refuses one); it comes from
``history_password_file`` or $GCOPS_HISTORY_PASSWORD, else libpq's own
(PGPASSWORD, ~/.pgpass). Messages name the database by ``postgresql://user@host:port/db``
and never hold the password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gcops.state.history import migrations
from gcops.state.history.store import HistoryError, SqlHistory

CONNECT_TIMEOUT = 10            # seconds, unless the URL sets connect_timeout
SCHEMA_LOCK = 0x6763_6F70       # pg_advisory_xact_lock key: "gcop"; migrations run one at a time


def display_url(url: str) -> str:
    """``postgresql://user@host:port/db``: enough to name the database, nothing secret."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or ""
    if host and ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class PostgresHistory(SqlHistory):
    """The history in a PostgreSQL database; gcops creates and migrates its tables."""

    paramstyle = "format"

    def __init__(self, url: str, password: str | None = None):
        import psycopg

        self.url = url
        self._password = password
        self.where = display_url(url)
        self.driver_error = psycopg.Error
        self.rejections = (psycopg.DataError, psycopg.IntegrityError)
        self._migrated = False

    def __repr__(self) -> str:
        return f"PostgresHistory({self.where!r})"

    def _many(self, db, statement: str, rows: list[tuple]) -> None:
        if rows:
            with db.cursor() as cursor:
                cursor.executemany(self._sql(statement), rows)

    def _tuples(self, db, statement: str, params=()) -> list[tuple]:
        from psycopg.rows import tuple_row

        with db.cursor(row_factory=tuple_row) as cursor:
            return cursor.execute(self._sql(statement), tuple(params)).fetchall()

    def describe(self, exc: Exception) -> str:
        text = super().describe(exc)
        if self._password:
            text = text.replace(self._password, "***")
        return text

    def _connect(self, *, for_writing: bool):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
        from psycopg.rows import dict_row

        options = {"autocommit": True, "row_factory": dict_row, "application_name": "gcops"}
        if self._password:
            options["password"] = self._password
        try:
            if "connect_timeout" not in conninfo_to_dict(self.url):
                options["connect_timeout"] = CONNECT_TIMEOUT
            db = psycopg.connect(self.url, **options)
        except psycopg.Error as exc:
            raise HistoryError(f"{self.where}: cannot connect: {self.describe(exc)}") from None
        if self._migrated:
            return db
        db = self._prepared(db, self._migrate)
        self._migrated = True
        return db

    def _newer_schema(self, version: int) -> HistoryError:
        return HistoryError(f"{self.where}: history schema version {version} is newer than this gcops "
                            f"knows ({migrations.schema_version()}); upgrade gcops")

    def _version(self, db) -> int:
        if db.execute("SELECT to_regclass('gcops_schema') AS t").fetchone()["t"] is None:
            return 0
        row = db.execute("SELECT version FROM gcops_schema").fetchone()
        return 0 if row is None else row["version"]

    def _migrate(self, db) -> None:
        """Apply every pending migration, each in its own transaction, one gcops at a time."""
        known = migrations.schema_version()
        version = self._version(db)
        if version > known:
            raise self._newer_schema(version)
        while version < known:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                db.execute("CREATE TABLE IF NOT EXISTS gcops_schema (version integer NOT NULL)")
                row = db.execute("SELECT version FROM gcops_schema").fetchone()
                if row is None:
                    db.execute("INSERT INTO gcops_schema (version) VALUES (0)")
                version = 0 if row is None else row["version"]   # another gcops may have migrated meanwhile
                if version > known:
                    raise self._newer_schema(version)
                if version == known:
                    return
                for statement in migrations.MIGRATIONS[version]:
                    db.execute(migrations.render(statement, "postgresql"))
                db.execute("UPDATE gcops_schema SET version = %s", (version + 1,))
                version += 1
