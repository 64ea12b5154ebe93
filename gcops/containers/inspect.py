"""What `<engine> container inspect` says about one container, parsed (pure; docker and podman alike).

`ContainerFacts.parse` reads one element of the inspect JSON array. The rest are
questions gcops asks of it: which path inside the container a host path backs,
which host port publishes a container port, which config file the registry was
started with, and what its REGISTRY_* environment says.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from gcops.errors import ParseError

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
REGISTRY_BINARIES = ("registry", "docker-registry")


class InspectError(ParseError):
    """The engine's answer is not what docker or podman give."""


@dataclass(frozen=True)
class Mount:
    source: str          # on the engine host
    destination: str     # inside the container
    writable: bool


@dataclass(frozen=True)
class ContainerFacts:
    id: str
    name: str
    running: bool
    status: str
    image: str
    started_at: str                           # when the container's main process last started (engine's clock)
    argv: tuple[str, ...]                     # what the container runs: entrypoint path, then its args
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    ports: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)   # "5000/tcp" -> ((ip, port),)

    @classmethod
    def parse(cls, doc: dict) -> "ContainerFacts":
        """One element of `container inspect`'s array. Raises InspectError when a needed field is missing."""
        try:
            config = doc.get("Config") or {}
            state = doc.get("State") or {}
            env = {}
            for item in config.get("Env") or ():
                key, _, value = item.partition("=")
                env[key] = value
            mounts = tuple(Mount(m.get("Source", ""), m.get("Destination", ""), bool(m.get("RW", True)))
                           for m in doc.get("Mounts") or () if m.get("Destination"))
            ports = {}
            for port, bindings in ((doc.get("NetworkSettings") or {}).get("Ports") or {}).items():
                ports[port] = tuple((b.get("HostIp") or "", str(b.get("HostPort") or "")) for b in bindings or ())
            argv = tuple(a for a in [doc.get("Path") or "", *(doc.get("Args") or ())] if a)
            return cls(id=doc["Id"], name=str(doc.get("Name", "")).lstrip("/"), running=bool(state.get("Running")),
                       status=str(state.get("Status", "")), started_at=str(state.get("StartedAt", "")),
                       image=str(config.get("Image") or doc.get("ImageName") or ""),
                       argv=argv, env=env, labels=dict(config.get("Labels") or {}), mounts=mounts, ports=ports)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InspectError(f"unexpected inspect output ({type(exc).__name__}: {exc})") from None

    def host_path(self, inside: str) -> str | None:
        """The engine host's path that backs `inside` (the deepest mount holding it), or None when the path
        lives in the container's own layer."""
        inside = posixpath.normpath(inside)
        best = None
        for mount in self.mounts:
            dest = posixpath.normpath(mount.destination)
            if (inside == dest or inside.startswith(dest.rstrip("/") + "/")) and mount.source:
                if best is None or len(dest) > len(posixpath.normpath(best.destination)):
                    best = mount
        if best is None:
            return None
        rest = posixpath.relpath(inside, posixpath.normpath(best.destination))
        return best.source if rest == "." else posixpath.join(best.source, rest)

    def published(self, container_port: int) -> tuple[str, str] | None:
        """(host ip, host port) publishing `container_port`/tcp, or None; a wildcard ip reads as loopback."""
        for ip, port in self.ports.get(f"{container_port}/tcp", ()):
            if port:
                return ("127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip), port
        return None

    def config_path(self, default: str) -> str:
        """The config file the registry was started with: REGISTRY_CONFIGURATION_PATH, the argument after
        `serve`, the last `.yml`/`.yaml` argument, else `default`."""
        if self.env.get("REGISTRY_CONFIGURATION_PATH"):
            return self.env["REGISTRY_CONFIGURATION_PATH"]
        args = list(self.argv)
        if "serve" in args and args.index("serve") + 1 < len(args):
            return args[args.index("serve") + 1]
        configs = [a for a in args if a.endswith((".yml", ".yaml"))]
        return configs[-1] if configs else default

    def registry_binary(self, default: str) -> str:
        """The registry binary the container runs (its entrypoint when that is the registry), else `default`."""
        if self.argv and posixpath.basename(self.argv[0]) in REGISTRY_BINARIES:
            return self.argv[0]
        return default
