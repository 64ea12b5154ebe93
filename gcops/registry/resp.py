"""A minimal Redis client (RESP2) over any connected socket, e.g. one from `Host.open_tcp`.

gcops needs a handful of commands (AUTH, SELECT, SCAN, DEL, SREM,
SMISMEMBER, EXISTS) on a socket that reaches Redis from the registry host's
side; a small client on a given socket is simpler than bending a library's
connection pool around a forwarded channel.
"""
from __future__ import annotations

import socket

from gcops.errors import HostError

MAX_BULK = 512 * 1024 * 1024


class RedisError(HostError):
    """Redis could not be talked to, or answered with an error."""


class ReplyError(RedisError):
    """Redis answered a command with an error reply (-ERR ..., -NOAUTH ..., -WRONGPASS ...)."""


def encode(*args: str | bytes | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode("utf-8")
        out += [f"${len(data)}\r\n".encode(), data, b"\r\n"]
    return b"".join(out)


class RespClient:
    """Commands on one connection; error replies raise ReplyError, a broken connection RedisError."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = sock.makefile("rb")

    def call(self, *args: str | bytes | int):
        """Send one command, give its reply (bytes, int, list, None). Raises ReplyError, RedisError."""
        return self.pipeline([args])[0]

    def pipeline(self, commands: list[tuple]) -> list:
        """Send every command, then read every reply; the first error reply is raised after all are read."""
        try:
            self.sock.sendall(b"".join(encode(*c) for c in commands))
            replies = [self._reply() for _ in commands]
        except OSError as exc:
            raise RedisError(f"connection to Redis failed: {exc}") from exc
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies

    def _line(self) -> bytes:
        line = self.reader.readline(65536)
        if not line.endswith(b"\r\n"):
            raise RedisError("Redis closed the connection" if not line else "malformed reply from Redis")
        return line[:-2]

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            if n > MAX_BULK:
                raise RedisError("bulk reply too large")
            data = self.reader.read(n + 2)
            if len(data) != n + 2:
                raise RedisError("Redis closed the connection")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"unexpected reply from Redis: {line[:40]!r}")

    def close(self) -> None:
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass
