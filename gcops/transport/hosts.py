"""Where a command runs: this machine, or a host over SSH.

One interface (`Host`) with two implementations. Commands are shell strings the
caller has already built with every value shell-quoted. Output is read in
chunks and handed on line by line (`stream`), so a GC printing millions of
lines never sits whole in memory. Only this module knows SSH.

The SSH connection is opened hop by hop as the OpenSSH client config says
(ssh_route: Host aliases, HostName, User, Port, IdentityFile, ProxyJump), every
hop's host key checked against known_hosts (ssh_open). Commands run on paramiko
channels of that connection rather than through invoke's runner, because the
runner keeps all captured output in memory and is text-only, while gcops moves
config bytes verbatim and streams GC output.
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

import paramiko

from gcops.errors import Cancelled, HostError
from gcops.transport.ssh_open import KeyCheck, OpenRoute, open_route
from gcops.transport.ssh_route import Defaults, RouteError, read_ssh_config, resolve_route

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


class SSHHost:
    """Commands run on a remote host over one SSH connection (paramiko; through jump hosts per the ssh config)."""

    def __init__(self, address: str, settings: SSHSettings):
        self.name = address
        self.settings = settings
        self._conn = self._open(address, settings)

    @staticmethod
    def _open(address: str, s: SSHSettings) -> OpenRoute:
        """Connect to ``address`` through the hops the ssh config gives; raise HostError/HostKeyRefused."""
        try:
            hops = resolve_route(address, read_ssh_config(s.config_file),
                                 Defaults(user=s.user, port=s.port, identity_file=s.identity_file,
                                          explicit=s.explicit))
        except RouteError as exc:
            raise HostError(f"{address}: {exc}") from exc
        return open_route(hops, KeyCheck(s.known_hosts, s.host_key_policy), s.connect_timeout,
                          host_error=HostError, key_refused=HostKeyRefused)

    def _channel(self, command: str, combine: bool):
        transport = self._conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"{self.name}: SSH connection lost")
        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout)
            chan.set_combine_stderr(combine)
            chan.exec_command(_wrap_sudo(command, self.settings.sudo))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{self.name}: SSH connection lost: {exc}") from exc
        return chan

    def run(self, command: str, *, input: bytes | None = None, timeout: float | None = 120,
            check: bool = True) -> Result:
        out, err = bytearray(), bytearray()
        deadline = None if timeout is None else time.monotonic() + timeout
        code = self._exec(command, out.extend, err.extend, input=input, deadline=deadline, cancel=None)
        result = Result(code, bytes(out), bytes(err))
        if check and code != 0:
            raise CommandFailed(self.name, command, result)
        return result

    def stream(self, command: str, on_line: Callable[[str], None], *, input: bytes | None = None,
               deadline: float | None = None, cancel: threading.Event | None = None) -> tuple[int, list[str]]:
        splitter = _LineSplitter(on_line)
        code = self._exec(command, splitter.feed, None, input=input, deadline=deadline, cancel=cancel)
        return code, splitter.finish()

    def _exec(self, command: str, on_out: Callable[[bytes], None], on_err: Callable[[bytes], None] | None, *,
              input: bytes | None, deadline: float | None, cancel: threading.Event | None) -> int:
        """Run on a new channel, handing output chunks on as they come; stderr merged when on_err is None."""
        chan = self._channel(command, combine=on_err is None)
        try:
            if input:
                chan.sendall(input)
            chan.shutdown_write()
            while True:
                _check_wait(deadline, cancel, self.name, command)
                select.select([chan], [], [], 0.2)
                got = False
                while chan.recv_ready():
                    on_out(chan.recv(CHUNK))
                    got = True
                while on_err is not None and chan.recv_stderr_ready():
                    on_err(chan.recv_stderr(CHUNK))
                    got = True
                if got:
                    continue
                if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                    # all output arrived before EOF; hand on whatever is still buffered
                    while chan.recv_ready():
                        on_out(chan.recv(CHUNK))
                    while on_err is not None and chan.recv_stderr_ready():
                        on_err(chan.recv_stderr(CHUNK))
                    break
                if not self._alive():
                    raise ConnectionLost(f"{self.name}: SSH connection lost while running {command_name(command)}")
            code = chan.recv_exit_status()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{self.name}: SSH connection lost: {exc}") from exc
        finally:
            chan.close()
        if code == -1:
            raise ConnectionLost(f"{self.name}: SSH connection lost (no exit status)")
        return code

    def open_tcp(self, address: str, port: int, *, timeout: float = 10) -> socket.socket:
        """A socket to address:port as the host sees it, through an SSH direct-tcpip channel.

        The channel is bridged to one end of a socketpair, so callers get real
        socket semantics (ssl, http.client, timeouts). Raises ForwardingRefused
        when the server forbids forwarding, HostError when the host cannot
        connect to address:port, ConnectionLost when the connection is gone.
        """
        transport = self._conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise ConnectionLost(f"{self.name}: SSH connection lost")
        try:
            chan = transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise ForwardingRefused(f"{self.name}: the SSH server refuses TCP forwarding "
                                        f"(to {address}:{port})") from exc
            raise HostError(f"{self.name}: cannot connect to {address}:{port} from the host: {exc.text}") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionLost(f"{self.name}: SSH connection lost: {exc}") from exc
        return _bridge(chan)

    def _alive(self) -> bool:
        transport = self._conn.client.get_transport()
        return transport is not None and transport.is_active()

    def close(self) -> None:
        try:
            self._conn.close()
        except (OSError, EOFError, paramiko.SSHException):  # closing a dead connection must not mask the real error
            pass


def _bridge(chan: paramiko.Channel) -> socket.socket:
    """One end of a socketpair whose other end is pumped to and from `chan` by two daemon threads."""
    ours, theirs = socket.socketpair()
    done = []
    lock = threading.Lock()

    def finished():
        with lock:
            done.append(1)
            if len(done) == 2:
                chan.close()
                theirs.close()

    def downstream():           # host -> caller
        try:
            while data := chan.recv(CHUNK):
                theirs.sendall(data)
            theirs.shutdown(socket.SHUT_WR)
        except OSError:
            chan.close()        # the caller is gone: nothing more to deliver
        finally:
            finished()

    def upstream():             # caller -> host
        try:
            while data := theirs.recv(CHUNK):
                chan.sendall(data)
            chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            chan.close()
        finally:
            finished()

    for pump in (downstream, upstream):
        threading.Thread(target=pump, name="gcops-tcp-bridge", daemon=True).start()
    return ours


def connect(address: str, settings: SSHSettings) -> Host:
    """Give a Host for `address` ("local" = this machine). Raises HostError."""
    if address == "local":
        return LocalHost(sudo=settings.sudo)
    return SSHHost(address, settings)
