"""More of a real registry host: htpasswd authentication, and a real redis-server inside the host."""
from __future__ import annotations

import shlex
import time

import bcrypt

from .kinds import KINDS
from .netns import HarnessError

REALM = "gcops-test"


def htpasswd_auth(kind: str, users: dict[str, str]) -> dict:
    """start_host kwargs for a registry behind htpasswd auth: extra_config and the bcrypt htpasswd file."""
    lines = b"".join(f"{u}:".encode() + bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)) + b"\n"
                     for u, p in users.items())
    extra = (f"auth:\n  htpasswd:\n    realm: {REALM}\n"
             f"    path: {KINDS[kind].config_dir}/htpasswd\n")
    return {"extra_config": extra, "config_files": {"htpasswd": lines}}


def redis_config(password: str | None, db: int = 0, port: int = 6379) -> str:
    """The registry config's redis section (append with extra_config, with blobdescriptor="redis")."""
    text = f"redis:\n  addr: 127.0.0.1:{port}\n  db: {db}\n"
    return text + (f"  password: {password}\n" if password else "")


def start_redis(host, *, password: str | None = None, port: int = 6379, timeout: float = 15) -> None:
    """A real redis-server on the host's own 127.0.0.1:port (no persistence); returns once it answers PING."""
    d = host.dir / f"redis-{port}"
    d.mkdir()
    conf = d / "redis.conf"
    conf.write_text(f"bind 127.0.0.1\nport {port}\nsave \"\"\nappendonly no\ndaemonize yes\n"
                    f"dir {d}\npidfile {d}/redis.pid\nlogfile {d}/redis.log\n"
                    + (f"requirepass {password}\n" if password else ""))
    host.sh(f"redis-server {shlex.quote(str(conf))}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = host.sh(f"redis-cli -p {port} ping", check=False, env={"REDISCLI_AUTH": password or ""})
        if p.stdout.strip() == b"PONG":
            return
        time.sleep(0.02)
    raise HarnessError(f"{host.name}: redis-server on 127.0.0.1:{port} did not answer PING within {timeout}s")


def redis_cli(host, *args: str, password: str | None = None, db: int = 0, port: int = 6379) -> list[str]:
    """redis-cli inside the host; its output lines."""
    cmd = " ".join(shlex.quote(a) for a in ("redis-cli", "-p", str(port), "-n", str(db), *args))
    p = host.sh(cmd, env={"REDISCLI_AUTH": password or ""})
    return p.stdout.decode().splitlines()
