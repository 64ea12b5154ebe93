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


TOKEN_PORT = 5001


def token_auth(kind: str, keys_dir, users: dict[str, str]) -> dict:
    """start_host kwargs for a registry behind Docker token auth (realm: start_token_server in the host)."""
    from . import token_server
    keys_dir.mkdir(parents=True)
    token_server.make_keys(keys_dir)
    (keys_dir / "users").write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
    extra = (f"auth:\n  token:\n    realm: http://127.0.0.1:{TOKEN_PORT}/auth\n"
             f"    service: {token_server.SERVICE}\n    issuer: {token_server.ISSUER}\n"
             f"    rootcertbundle: {KINDS[kind].config_dir}/token.crt\n")
    return {"extra_config": extra, "config_files": {"token.crt": (keys_dir / "token.crt").read_bytes()}}


def start_token_server(host, keys_dir, timeout: float = 15) -> None:
    """Run tests/harness/token_server.py inside the host on 127.0.0.1:TOKEN_PORT; return once it answers."""
    import sys
    from pathlib import Path
    script = Path(__file__).with_name("token_server.py")
    host.sh(f"nohup {shlex.quote(sys.executable)} {shlex.quote(str(script))} {TOKEN_PORT} "
            f"{shlex.quote(str(keys_dir))} >{shlex.quote(str(keys_dir / 'server.log'))} 2>&1 &")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = host.sh(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{TOKEN_PORT}/auth", check=False)
        if p.stdout.strip() == b"401":
            return
        time.sleep(0.02)
    raise HarnessError(f"{host.name}: token server did not answer within {timeout}s")
