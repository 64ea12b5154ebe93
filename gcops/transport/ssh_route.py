"""Which SSH hops reach a host: the OpenSSH client config ([ssh] config_file) applied to it.

Honoured per host: `Host` aliases (and `Match`, as paramiko reads them), `HostName`,
`User`, `Port`, `IdentityFile`, `ProxyJump` (a comma list of `[user@]host[:port]`,
each jump host looked up in the same file, its own ProxyJump followed). A gcops key
([ssh] or the instance's) wins only where the user set it; otherwise the ssh_config's
value wins over gcops' default. `Include` and `ProxyCommand` are not followed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import paramiko

from gcops.errors import UsageError

MAX_HOPS = 8


class RouteError(UsageError):
    """The ssh_config cannot be used for this host (unreadable, a ProxyJump loop, a bad jump spec)."""


@dataclass(frozen=True)
class Hop:
    """One SSH connection of a route; ``hostname`` is also the name looked up in known_hosts."""

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[Path, ...]

    @property
    def label(self) -> str:
        where = self.hostname if self.port == 22 else f"{self.hostname}:{self.port}"
        return where if self.alias == self.hostname else f"{self.alias} ({where})"


@dataclass(frozen=True)
class Defaults:
    """gcops' own values for the target, and which of them the user set explicitly."""

    user: str
    port: int
    identity_file: Path | None
    explicit: frozenset[str] = frozenset()  # of "user", "port", "identity_file"


def read_ssh_config(path: Path | None) -> paramiko.SSHConfig:
    """The parsed file; an empty config when ``path`` is None or does not exist. RouteError if unreadable."""
    if path is None or not Path(path).exists():
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(str(path))
    except (OSError, UnicodeDecodeError, paramiko.ssh_exception.ConfigParseError) as exc:
        raise RouteError(f"ssh config {path}: cannot read it: {exc}") from exc


_JUMP = re.compile(r"^(?:(?P<user>[^@]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:]+))(?::(?P<port>\d+))?$")


def _parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    text = spec.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://"):].rstrip("/")
    match = _JUMP.match(text)
    if not match:
        raise RouteError(f"ProxyJump {spec!r}: expected [user@]host[:port]")
    port = int(match["port"]) if match["port"] else None
    return match["user"], match["v6"] or match["host"], port


def _identities(found: paramiko.SSHConfigDict, fallback: Path | None) -> tuple[Path, ...]:
    files = [Path(p).expanduser() for p in found.get("identityfile", [])]
    if fallback is not None and fallback not in files:
        files.append(fallback)
    return tuple(files)


def _jump_hops(config: paramiko.SSHConfig, proxyjump: str | None, defaults: Defaults,
               seen: tuple[str, ...]) -> list[Hop]:
    """The hops before a host whose ProxyJump is ``proxyjump`` (none for None/"none")."""
    if not proxyjump or proxyjump.strip().lower() == "none":
        return []
    hops: list[Hop] = []
    for index, spec in enumerate(proxyjump.split(",")):
        user, alias, port = _parse_jump(spec)
        if alias in seen:
            raise RouteError(f"ProxyJump loop: {' -> '.join((*seen, alias))} (use 'Host * !{alias}' in the ssh config)")
        found = config.lookup(alias)
        if index == 0:  # the first jump host is reached by its own route (OpenSSH does the same)
            hops += _jump_hops(config, found.get("proxyjump"), defaults, (*seen, alias))
        hops.append(Hop(alias=alias, hostname=found.get("hostname", alias),
                        port=port or int(found.get("port", 22)),
                        user=user or found.get("user", defaults.user),
                        identity_files=_identities(found, defaults.identity_file)))
    if len(hops) >= MAX_HOPS:
        raise RouteError(f"more than {MAX_HOPS - 1} ProxyJump hops")
    return hops


def resolve_route(address: str, config: paramiko.SSHConfig, defaults: Defaults) -> list[Hop]:
    """The hops to reach ``address``: jump hosts in order, the target last. Raises RouteError."""
    found = config.lookup(address)
    explicit = defaults.explicit
    user = defaults.user if "user" in explicit else found.get("user", defaults.user)
    port = defaults.port if "port" in explicit else int(found.get("port", defaults.port))
    if "identity_file" in explicit and defaults.identity_file is not None:
        identities: tuple[Path, ...] = (defaults.identity_file,)
    else:
        identities = _identities(found, defaults.identity_file)
    target = Hop(alias=address, hostname=found.get("hostname", address), port=port, user=user,
                 identity_files=identities)
    return [*_jump_hops(config, found.get("proxyjump"), defaults, (address,)), target]
