"""Shared pytest fixtures: test hosts (network + mount namespaces with a real registry and sshd).

Integration fixtures skip when the machine cannot run hosts (not root, tools missing),
except under CI=true, where CI installs everything and a skip would hide a broken harness:
there they fail instead.
"""
from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import hosts as _hosts

REQUIRED_TOOLS = ("docker-registry", "skopeo", "sshd", "ssh", "ssh-keygen", "ip", "nsenter", "unshare", "curl")
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def _missing_prereqs() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network and mount namespaces)"
    path = os.environ.get("PATH", "") + ":" + _SBIN
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t, path=path)]
    if missing:
        return f"integration tests need {', '.join(missing)} (apt-get install docker-registry skopeo openssh-server)"
    return None


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require_hosts() -> None:
    """Skip (or, on CI, fail) the calling test if test hosts cannot run here."""
    reason = _missing_prereqs()
    if reason:
        if _on_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _cleanup_stale_hosts():
    if _missing_prereqs() is None:
        _hosts.cleanup_stale()
    yield


@pytest.fixture(scope="session")
def client_key(tmp_path_factory) -> Path:
    """Private key (ed25519, no passphrase) every test host authorizes; <key>.pub beside it."""
    require_hosts()
    return _hosts.make_client_key(tmp_path_factory.mktemp("ssh-client"))


@pytest.fixture
def host_factory(client_key, tmp_path):
    """host_factory(name, kind="distribution", **start_host_kwargs) -> TestHost; all closed at teardown."""
    started: list[_hosts.TestHost] = []
    base = tmp_path / "hosts"

    def factory(name: str, kind: str = "distribution", **kwargs) -> _hosts.TestHost:
        kwargs.setdefault("base_dir", base)
        host = _hosts.start_host(name, kind, client_key=client_key, **kwargs)
        started.append(host)
        return host

    factory.base_dir = base
    yield factory
    errors = []
    for host in reversed(started):
        try:
            host.close()
        except Exception as e:  # close every host even if one fails
            errors.append(f"{host.name}: {e}")
    if errors:
        pytest.fail("closing test hosts failed: " + "; ".join(errors), pytrace=False)


@dataclass(frozen=True)
class PostgresDatabase:
    """A fresh database on the session's PostgreSQL server, owned by the login role ``gcops``."""

    server: object
    name: str
    url: str                                  # postgresql://gcops@127.0.0.1:<port>/<name>, no password
    password: str = field(repr=False)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (Debian's binaries) on a free loopback port, for the whole session."""
    from tests.harness import postgres

    reason = postgres.missing()
    if reason:
        if _on_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    server = postgres.start_postgres()
    yield server
    server.close()


_GCOPS_ROLE_PASSWORD = "pgpw-" + secrets.token_hex(10)


@pytest.fixture
def postgres_db(postgres_server):
    """A new, empty database per test; the server is started again at teardown if a test stopped it."""
    name = f"gcops_{secrets.token_hex(4)}"
    url = postgres_server.create_database(name, "gcops", _GCOPS_ROLE_PASSWORD)
    yield PostgresDatabase(postgres_server, name, url, _GCOPS_ROLE_PASSWORD)
    if postgres_server.proc is None:
        postgres_server.start()
