"""Commands on a remote host over one SSH connection: paramiko channels, opened hop by hop.

The connection follows the OpenSSH client config (ssh_route: Host aliases, HostName, User, Port,
IdentityFile, ProxyJump), every hop's host key checked against known_hosts (ssh_open). Commands run
on paramiko channels rather than through invoke's runner, because the runner keeps all captured
output in memory and is text-only, while gcops moves config bytes verbatim and streams GC output.
Only this module and ssh_open know paramiko's session API; callers get one through hosts.connect.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from typing import Callable

import paramiko

from gcops.errors import HostError
from gcops.transport.hosts import (
    CHUNK, CommandFailed, ConnectionLost, ForwardingRefused, HostKeyRefused, Result, SSHSettings, _check_wait,
    _LineSplitter, _wrap_sudo, command_name,
)
from gcops.transport.ssh_open import KeyCheck, OpenRoute, open_route
from gcops.transport.ssh_route import Defaults, RouteError, read_ssh_config, resolve_route


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
