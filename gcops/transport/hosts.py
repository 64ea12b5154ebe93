"""Where a command runs: this machine, or a host over SSH.

One interface (`Host`) with two implementations. Commands are shell strings the
caller has already built with every value shell-quoted. Output is read in
chunks and handed on line by line (`stream`), so a GC printing millions of
lines never sits whole in memory.

The SSH implementation is ssh.py (one paramiko connection, hop by hop as the
OpenSSH client config says, every hop's host key checked); only transport/
knows SSH.
"""
from __future__ import annotations

import os
import select
import shlex
import socket
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from gcops.errors import Cancelled, HostError

TAIL_LINES = 20
CHUNK = 65536
MAX_LINE = 1 << 20  # a "line" longer than this is handed on in pieces


class HostKeyRefused(HostError):
    """The host's key is unknown (strict policy) or differs from known_hosts."""


class ConnectionLost(HostError):
    """The connection dropped while a command was running."""


class CommandTimeout(HostError):
    """A command ran past its deadline."""


class ForwardingRefused(HostError):
    """The SSH server refuses TCP forwarding (AllowTcpForwarding no): use a command on the host instead."""


@dataclass
class Result:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def command_name(command: str) -> str:
    """What a command is, for an error line: the host scripts it runs (`/bin/sh -c <text> gcops-<name>
    ...` is `<name>.sh`; several joined with `&&` are named in turn), else its first line, shortened."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    names = [f"{words[i + 2][len('gcops-'):]}.sh" for i in range(len(words) - 2)
             if words[i] == "-c" and words[i + 2].startswith("gcops-")]
    return " && ".join(names) if names else command.splitlines()[0][:120] if command else "(empty command)"


class CommandFailed(HostError):
    def __init__(self, host: str, command: str, result: Result):
        self.host, self.command, self.result = host, command, result
        tail = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()[-5:]
        super().__init__(
            f"{host}: {command_name(command)} exited {result.exit_code}"
            + (f": {' | '.join(tail)}" if tail else "")
        )


class Host(Protocol):
    name: str

    def run(self, command: str, *, input: bytes | None = None, timeout: float | None = 120,
            check: bool = True) -> Result: ...

    def stream(self, command: str, on_line: Callable[[str], None], *, input: bytes | None = None,
               deadline: float | None = None, cancel: threading.Event | None = None) -> tuple[int, list[str]]: ...

    def open_tcp(self, address: str, port: int, *, timeout: float = 10) -> socket.socket: ...

    def close(self) -> None: ...


class _LineSplitter:
    """Turns byte chunks into lines for `on_line`, keeping only the last few lines."""

    def __init__(self, on_line: Callable[[str], None]):
        self.on_line = on_line
        self.pending = b""
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk
        *lines, self.pending = data.split(b"\n")
        for raw in lines:
            self._emit(raw)
        if len(self.pending) > MAX_LINE:
            self._emit(self.pending)
            self.pending = b""

    def finish(self) -> list[str]:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""
        return list(self.tail)

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.tail.append(line)
        self.on_line(line)


def _check_wait(deadline: float | None, cancel: threading.Event | None, name: str, command: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{name}: interrupted while running {command_name(command)}")
    if deadline is not None and time.monotonic() > deadline:
        raise CommandTimeout(f"{name}: deadline passed while running {command_name(command)}")


def _wrap_sudo(command: str, sudo: bool) -> str:
    return f"sudo -n -- sh -c {shlex.quote(command)}" if sudo else command


class LocalHost:
    """Commands run on this machine with /bin/sh; no SSH connection is opened."""

    def __init__(self, sudo: bool = False):
        self.name = "local"
        self.sudo = sudo and os.geteuid() != 0

    def run(self, command: str, *, input: bytes | None = None, timeout: float | None = 120,
            check: bool = True) -> Result:
        try:
            proc = subprocess.run(["/bin/sh", "-c", _wrap_sudo(command, self.sudo)], input=input,
                                  capture_output=True, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(f"local: {command_name(command)} timed out after {timeout}s") from exc
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and result.exit_code != 0:
            raise CommandFailed(self.name, command, result)
        return result

    def stream(self, command: str, on_line: Callable[[str], None], *, input: bytes | None = None,
               deadline: float | None = None, cancel: threading.Event | None = None) -> tuple[int, list[str]]:
        # A session of its own: Ctrl-C on the terminal reaches gcops, which then
        # stops the GC deliberately (by pid file) and restores.
        proc = subprocess.Popen(["/bin/sh", "-c", _wrap_sudo(command, self.sudo)],
                                stdin=subprocess.PIPE if input else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        if input:
            proc.stdin.write(input)
            proc.stdin.close()
        splitter = _LineSplitter(on_line)
        fd = proc.stdout.fileno()
        try:
            while True:
                _check_wait(deadline, cancel, self.name, command)
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    chunk = os.read(fd, CHUNK)
                    if not chunk:
                        break
                    splitter.feed(chunk)
            return proc.wait(), splitter.finish()
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                # gcops stops waiting; the caller kills the GC by its pid file
                # so that the host-side record of it stays the single truth.
                threading.Thread(target=proc.wait, daemon=True).start()

    def open_tcp(self, address: str, port: int, *, timeout: float = 10) -> socket.socket:
        """A connected socket to address:port (this machine is the host). Raises HostError."""
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            raise HostError(f"local: cannot connect to {address}:{port}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class SSHSettings:
    user: str
    port: int
    identity_file: Path | None
    known_hosts: Path
    host_key_policy: str  # "strict" | "accept-new"
    sudo: bool
    connect_timeout: float
    config_file: Path | None = None          # OpenSSH client config; a missing file is no config
    explicit: frozenset[str] = frozenset()   # of user/port/identity_file: set in the gcops config (they win)


def connect(address: str, settings: SSHSettings) -> Host:
    """Give a Host for `address` ("local" = this machine). Raises HostError."""
    if address == "local":
        return LocalHost(sudo=settings.sudo)
    from gcops.transport.ssh import SSHHost   # only SSH needs paramiko's session machinery

    return SSHHost(address, settings)
