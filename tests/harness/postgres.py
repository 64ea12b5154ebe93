"""A real PostgreSQL server for tests: Debian's postgresql binaries, own data and socket dirs, loopback port.

PostgreSQL refuses to run as root, so as root the server (and initdb) run as the
`postgres` user (runuser); the data directory is a fresh tmp dir that user owns.
Authentication is scram-sha-256 over TCP with a password the tests make, so a
test can check that gcops never shows it.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .netns import HarnessError

SUPERUSER = "postgres"


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding `postgres`, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def missing() -> str | None:
    """Why a server cannot start here, or None."""
    if bin_dir() is None:
        return "PostgreSQL tests need the postgresql package (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "PostgreSQL tests as root need the 'postgres' user (apt-get install postgresql)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresServer:
    root: Path
    port: int
    superuser_password: str = field(repr=False)
    proc: subprocess.Popen | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30) -> None:
        """Start the server and return once it accepts a login."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                _as_postgres([str(bin_dir() / "postgres"), "-D", str(self.data), "-p", str(self.port),
                              "-k", str(self.root / "sock"), "-c", "listen_addresses=127.0.0.1",
                              "-c", "fsync=off", "-c", "max_connections=50"]),
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise HarnessError(f"postgres exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                self.sql("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise HarnessError(f"postgres did not accept a login on port {self.port} within {timeout}s")
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT); waits until the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def sql(self, statement: str, params: tuple = (), database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (autocommit); its rows ([] when it gives none)."""
        import psycopg

        with psycopg.connect(self.url(database), password=self.superuser_password, autocommit=True,
                             connect_timeout=2) as db:
            cur = db.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A new database `name` owned by the login role `owner` (created when missing); gives its URL
        (without the password)."""
        from psycopg import sql

        import psycopg
        with psycopg.connect(self.url(), password=self.superuser_password, autocommit=True) as db:
            if not db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchall():
                db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner),
                                                                              sql.Literal(password)))
            db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
        return self.url(name, owner)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb a fresh cluster in a tmp dir and start it on a free loopback port."""
    reason = missing()
    if reason:
        raise HarnessError(reason)
    root = Path(tempfile.mkdtemp(prefix="gcops-pg-"))
    password = "su-" + secrets.token_hex(12)
    (root / "sock").mkdir()
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SUPERUSER)
        for path in (root, root / "sock", pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    init = subprocess.run(_as_postgres([str(bin_dir() / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
                                        "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync",
                                        "--encoding=UTF8", "--locale=C"]),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    pwfile.unlink()
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise HarnessError(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
    server = PostgresServer(root=root, port=_free_port(), superuser_password=password)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
