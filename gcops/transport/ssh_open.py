"""Open an SSH route hop by hop, checking every hop's host key the same way.

Each hop is its own paramiko client with gcops' known_hosts loaded and the
configured policy (strict: unknown keys refused; accept-new: unknown keys
written down; a changed key is always refused). The next hop is reached through
a `direct-tcpip` channel of the previous one (what OpenSSH's ProxyJump does).
No system or user known_hosts file other than the configured one is consulted,
and nothing is trusted silently: fabric's own gateway handling auto-adds keys,
so it is not used.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import structlog

from gcops.transport.ssh_route import Hop


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Trust a host seen for the first time and write its key to known_hosts.

    A *changed* key never reaches a policy: paramiko raises BadHostKeyException.
    """

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.known_hosts, "a", encoding="ascii") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


@dataclass(frozen=True)
class KeyCheck:
    known_hosts: Path
    policy: str  # "strict" | "accept-new"


@dataclass
class OpenRoute:
    """The target's client and the jump clients it goes through (closed target first)."""

    client: paramiko.SSHClient
    jumps: list[paramiko.SSHClient] = field(default_factory=list)

    def close(self) -> None:
        for client in [self.client, *reversed(self.jumps)]:
            try:
                client.close()
            except (OSError, EOFError, paramiko.SSHException):  # closing a dead connection must not mask the real error
                pass


def _client(check: KeyCheck) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    if check.known_hosts.exists():
        client.load_host_keys(str(check.known_hosts))
    if check.policy == "accept-new":
        client.set_missing_host_key_policy(AcceptNewPolicy(check.known_hosts))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _connect(client: paramiko.SSHClient, hop: Hop, sock, timeout: float, what: str, check: KeyCheck,
             host_error, key_refused) -> None:
    """Connect ``client`` to ``hop``; raise key_refused / host_error with one line naming ``what``."""
    files = [str(p) for p in hop.identity_files if p.exists()]
    try:
        client.connect(hop.hostname, port=hop.port, username=hop.user, key_filename=files or None,
                       look_for_keys=not files, allow_agent=True, timeout=timeout, banner_timeout=timeout,
                       auth_timeout=timeout, sock=sock)
    except paramiko.BadHostKeyException as exc:
        raise key_refused(f"{what}: host key CHANGED (got {exc.key.get_name()} "
                          f"{exc.key.get_fingerprint().hex()}), refusing; check {check.known_hosts}") from exc
    except paramiko.AuthenticationException as exc:
        raise host_error(f"{what}: authentication failed as {hop.user} "
                         f"(keys tried: {', '.join(files) or 'agent and default keys'})") from exc
    except paramiko.SSHException as exc:
        if "known_hosts" in str(exc) or "not found in known" in str(exc):
            raise key_refused(f"{what}: host key not in known_hosts file {check.known_hosts} "
                              "(host_key_policy = \"strict\"); add it with ssh-keyscan after checking its "
                              "fingerprint") from exc
        raise host_error(f"{what}: SSH failed: {exc}") from exc
    except (socket.timeout, TimeoutError) as exc:
        raise host_error(f"{what}: connection timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise host_error(f"{what}: cannot connect: {exc.strerror or exc}") from exc


def open_route(hops: list[Hop], check: KeyCheck, timeout: float, *, host_error, key_refused) -> OpenRoute:
    """Connect through every hop to the last one; the host keys of all of them are checked.

    ``host_error`` / ``key_refused``: the exception classes to raise (hosts.HostError, hosts.HostKeyRefused).
    """
    log = structlog.get_logger()
    target = hops[-1]
    if not check.known_hosts.exists() and check.policy == "strict":
        raise key_refused(f"{target.label}: known_hosts file {check.known_hosts} does not exist "
                          "(host_key_policy = \"strict\"); add the host's key or use \"accept-new\"")
    clients: list[paramiko.SSHClient] = []
    sock = None
    try:
        for index, hop in enumerate(hops):
            is_jump = index < len(hops) - 1
            what = f"{hop.label} (jump host for {target.label})" if is_jump else target.label
            log.debug("ssh_connect", host=hop.hostname, port=hop.port, user=hop.user, jump=is_jump,
                      identity_files=[str(p) for p in hop.identity_files])
            client = _client(check)
            clients.append(client)
            _connect(client, hop, sock, timeout, what, check, host_error, key_refused)
            if is_jump:
                following = hops[index + 1]
                try:
                    sock = client.get_transport().open_channel(
                        "direct-tcpip", (following.hostname, following.port), ("127.0.0.1", 0), timeout=timeout)
                except (paramiko.SSHException, OSError) as exc:
                    raise host_error(f"{what}: cannot forward to {following.label}: {exc}") from exc
    except BaseException:
        for client in reversed(clients):
            client.close()
        raise
    return OpenRoute(clients[-1], clients[:-1])
