"""A containerised registry resolved on its engine host: the instance rewritten with host-side vars.

`resolve` asks the engine (`container inspect`) where the config and the storage
live on the engine host, which port publishes the registry, and what REGISTRY_*
variables override in its config; it gives back the Instance with
`vars.config`, `vars.storage_root` and `vars.registry_url` as the engine host
sees them, and the playbook's [container.commands] rendered for that container.
The host scripts then run on the engine host unchanged: they edit and restore
the host's file, and restart the container through the engine. A config inside
the container's own layer is copied out to a host file first, and copied back
in before every restart or start (so the watchdog's and recover's restores do too).
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import shlex
from dataclasses import dataclass

from gcops.config import ContainerRef, Instance
from gcops.containers import registry_env
from gcops.containers.inspect import ContainerFacts, InspectError
from gcops.hostside import scripts
from gcops.hostside.kv import parse_kv
from gcops.errors import HostError, Refused
from gcops.transport.hosts import Host
from gcops.playbooks import as_literal_template, render
from gcops.registry.config_file import RegistryConfigError, load_plain, registry_config_from

COPY_DIR = "/var/lib/gcops/containers"   # on the engine host: configs that live in a container's layer
INSPECT_SEPARATOR = "--- inspect ---"
DEFAULT_HTTP_ADDR = ":5000"


class EngineUnreachable(Refused):
    """The engine command is missing on the host, or its daemon/socket does not answer."""


class ContainerRefused(Refused):
    """The container cannot be worked on (none, several, stopped, recreated, config or env gcops cannot use)."""


@dataclass(frozen=True)
class Resolved:
    """What the engine said, kept with the instance for the rest of the run."""

    ref: ContainerRef
    facts: ContainerFacts
    engine: str                    # the engine command as quoted shell words
    config_inside: str             # the config path inside the container
    registry_inside: str           # the registry binary inside the container (run by exec)
    config_copied: bool            # the config lives in the container's layer; vars.config is its host copy
    registry_env: dict[str, str]   # REGISTRY_* variables the registry applies over its config file


def _engine_words(kv: dict[str, str], engine: str) -> str:
    """The engine command as the host runs it, with the endpoint the host's environment named (so that a
    detached watchdog, which may not inherit that environment, reaches the same engine)."""
    words = [kv.get("engine_path") or engine]
    endpoint = {"docker": ("DOCKER_HOST", kv.get("docker_host")),
                "podman": ("CONTAINER_HOST", kv.get("container_host"))}[engine]
    if endpoint[1]:
        words = ["env", f"{endpoint[0]}={endpoint[1]}", *words]
    return " ".join(shlex.quote(w) for w in words)


def find_command(ref: ContainerRef) -> str:
    """The host command that finds the container and prints the engine's inspect of it."""
    args = [f"engine={ref.engine}"] + ([f"name={ref.name}"] if ref.name is not None else
                                       [f"project={ref.compose_project}", f"service={ref.compose_service}"])
    return scripts.command("container_find", *args)


def find(host: Host, ref: ContainerRef) -> tuple[ContainerFacts, str]:
    """The one running container `ref` names, and the engine command. Raises EngineUnreachable or
    ContainerRefused, each one line naming the engine or the container."""
    result = host.run(find_command(ref), timeout=60, check=False)
    head, _, body = result.text.partition(INSPECT_SEPARATOR)
    kv = parse_kv(head)
    where = f"{host.name}: {ref.engine} {ref.describe()}"
    if result.exit_code == 3:
        raise EngineUnreachable(f"{host.name}: engine {ref.engine}: no `{ref.engine}` command on the engine host")
    if result.exit_code == 4:
        raise EngineUnreachable(f"{host.name}: engine {ref.engine} does not answer: {kv.get('engine_down', '')}")
    if result.exit_code == 6:
        raise ContainerRefused(f"{where}: no such container")
    if result.exit_code == 7:
        raise ContainerRefused(f"{where}: {kv.get('inspect_error') or 'no such container'}")
    if result.exit_code != 0:
        raise ContainerRefused(f"{where}: finding it failed (exit {result.exit_code}): {result.text.strip()[-200:]}")
    try:
        docs = json.loads(body)
        found = [ContainerFacts.parse(doc) for doc in docs]
    except (ValueError, InspectError) as exc:
        raise ContainerRefused(f"{where}: cannot read the engine's inspect output: {exc}") from None
    if len(found) != 1:
        names = ", ".join(f.name or f.id[:12] for f in found)
        raise ContainerRefused(f"{where}: {len(found)} containers match ({names}): gcops works on one; "
                               "name the container with `container`")
    facts = found[0]
    if not facts.running:
        raise ContainerRefused(f"{where}: container {facts.name} is not running ({facts.status or 'stopped'})")
    return facts, _engine_words(kv, ref.engine)


def _http_port(effective: dict) -> tuple[int, bool]:
    """(the port the registry listens on inside the container, whether it serves TLS)."""
    http = effective.get("http") if isinstance(effective.get("http"), dict) else {}
    addr = str(http.get("addr") or DEFAULT_HTTP_ADDR)
    try:
        port = int(addr.rsplit(":", 1)[-1])
    except ValueError:
        port = 5000
    tls = isinstance(http.get("tls"), dict) and bool(http["tls"].get("certificate"))
    return port, tls


def _config_text(host: Host, path: str, copy: str) -> str:
    result = host.run(scripts.command("container_config", f"cfg={path}", *([f"copy={copy}"] if copy else [])),
                      timeout=60, check=False)
    if result.exit_code != 0:
        raise ContainerRefused(f"{host.name}: {path}: {result.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return result.text


def _require_binary(host: Host, engine: str, facts: ContainerFacts, binary: str, label: str) -> None:
    """The registry binary is there to `exec` in the container (its shell's own `test`: BusyBox has it)."""
    command = f"{engine} exec {shlex.quote(facts.id)} /bin/sh -c 'test -x \"$1\"' gcops-check {shlex.quote(binary)}"
    if host.run(command, timeout=60, check=False).exit_code != 0:
        raise ContainerRefused(f"{label}: no executable {binary} in it (or no /bin/sh): set vars.registry to the "
                               "registry binary inside the container")


def resolve(instance: Instance, host: Host, mode: str) -> Instance:
    """The instance with host-side vars and rendered container commands; unchanged when it names no
    container. Raises EngineUnreachable / ContainerRefused (nothing changed)."""
    ref = instance.container
    if ref is None:
        return instance
    facts, engine = find(host, ref)
    playbook = instance.playbook
    label = f"{host.name}: {ref.engine} container {facts.name}"
    if mode == "stop" and "stop" not in playbook.container_commands:
        raise ContainerRefused(f"{label}: --mode stop would stop the container that runs the GC; "
                               "use --mode readonly or concurrent")
    # inside the container: the playbook's vars, its [container.vars], then what the instance set itself
    own = {k: v for k, v in instance.vars.items() if v != playbook.vars.get(k)}
    inside = {**instance.vars, **playbook.container_vars, **own}
    config_inside = own.get("config") or facts.config_path(inside["config"])
    binary = own.get("registry") or facts.registry_binary(inside["registry"])
    config_host = facts.host_path(config_inside)
    copy = ""
    if config_host is None:   # in the container's own layer: worked on through a host copy
        config_host = posixpath.join(COPY_DIR, f"{ref.engine}-{facts.name}", posixpath.basename(config_inside))
        copy = f"{engine} cp {shlex.quote(facts.id + ':' + config_inside)} {shlex.quote(config_host + '.gcops-out')}"
    _require_binary(host, engine, facts, binary, label)
    env = registry_env.overrides(facts.env)
    fixed = registry_env.read_only_fixed_by(env)
    if fixed:
        raise ContainerRefused(f"{label}: {', '.join(fixed)} is set in its environment and decides read-only "
                               f"there: gcops cannot change it by editing {config_inside}; move it into the config file")
    try:
        effective = registry_env.apply(load_plain(_config_text(host, config_host, copy)), env)
        registry = registry_config_from(effective)
    except RegistryConfigError as exc:
        raise ContainerRefused(f"{label}: {config_inside}: {exc}") from None
    vars = dict(instance.vars)
    vars["config"] = config_host
    if registry.storage_driver == "filesystem":
        root = facts.host_path(registry.storage_root or "/var/lib/registry")
        if root is None:
            raise ContainerRefused(f"{label}: its storage {registry.storage_root} is in the container's own layer, "
                                   "not on a volume or bind mount: mount it so that it outlives the container")
        if not instance.vars.get("storage_root"):
            vars["storage_root"] = root
    if instance.vars.get("registry_url") == playbook.vars.get("registry_url"):   # not set by the user
        port, tls = _http_port(effective)
        published = facts.published(port)
        if published is None:
            raise ContainerRefused(f"{label}: its port {port} is not published: publish it (-p 127.0.0.1:{port}:{port}) "
                                   "or set vars.registry_url to where the engine host reaches the registry")
        vars["registry_url"] = f"{'https' if tls else 'http'}://{published[0]}:{published[1]}"
    given = {**inside, "config": config_inside, "registry": binary, "container_id": facts.id}
    raw = {"engine": engine}
    commands = {name: render(template, given, raw) for name, template in playbook.container_commands.items()}
    for name in ("stop", "start"):
        commands.setdefault(name, f"echo 'gcops: {ref.engine} container {facts.name}: no {name} command' >&2; false")
    if copy:   # every start of the registry reads the host copy, copied back into the container first
        copy_in = f"{engine} cp {shlex.quote(config_host)} {shlex.quote(facts.id + ':' + config_inside)}"
        commands = {name: f"{copy_in} && {{ {cmd}; }}" if name in ("restart", "start") else cmd
                    for name, cmd in commands.items()}
    playbook = dataclasses.replace(playbook, commands={k: as_literal_template(v) for k, v in commands.items()})
    # the preflight's gc_binary check looks at the engine command: the registry binary itself is inside
    vars["registry"] = shlex.split(engine)[-1]
    resolved = Resolved(ref=ref, facts=facts, engine=engine, config_inside=config_inside, registry_inside=binary,
                        config_copied=bool(copy), registry_env=env)
    return dataclasses.replace(instance, vars=vars, playbook=playbook, resolved=resolved)


def ensure_same(instance: Instance, host: Host) -> Instance:
    """The container resolved earlier is still the one running; else ContainerRefused naming it
    (recreated with a new id, or stopped). Gives the instance with the engine's facts as they are now:
    the start time a restart is proved against is the one just before the window, not the preflight's."""
    resolved = instance.resolved
    if not isinstance(resolved, Resolved):
        return instance
    try:
        facts, _ = find(host, resolved.ref)
    except ContainerRefused as exc:
        raise ContainerRefused(f"{exc} (it was {resolved.facts.name}, id {resolved.facts.id[:12]})") from None
    if facts.id != resolved.facts.id:
        raise ContainerRefused(f"{host.name}: {resolved.ref.engine} container {facts.name} was recreated "
                               f"(id {resolved.facts.id[:12]} is now {facts.id[:12]}) since gcops read it; run again")
    return dataclasses.replace(instance, resolved=dataclasses.replace(resolved, facts=facts))


def changed_since_resolved(instance: Instance, host: Host | None) -> list[str]:
    """Why a container could not be restored, when it is no longer the one resolved (recreated or stopped
    during the window: the restore restarted the old id), as a line naming it; else nothing."""
    if not isinstance(instance.resolved, Resolved) or host is None:
        return []
    try:
        ensure_same(instance, host)
    except (Refused, HostError) as exc:
        return [f"{exc}: restart the container that runs now, so that it reads its restored config"]
    return []


def restarted_since_resolved(instance: Instance, host: Host) -> bool:
    """The container itself started again since gcops resolved it (same id): its main process, the registry
    of a `registry:2` container, runs with what was written before that restart. False when unknown."""
    resolved = instance.resolved
    if not isinstance(resolved, Resolved):
        return False
    try:
        facts, _ = find(host, resolved.ref)
    except (Refused, HostError):
        return False
    return facts.id == resolved.facts.id and bool(facts.started_at) and facts.started_at != resolved.facts.started_at


def registry_env_of(instance: Instance) -> dict[str, str] | None:
    """The REGISTRY_* overrides of a resolved container instance, else None."""
    return instance.resolved.registry_env if isinstance(instance.resolved, Resolved) else None
