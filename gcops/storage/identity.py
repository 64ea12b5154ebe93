"""Two configured instances on one storage: noticed before any window opens, and refused.

Collecting one registry while another registry writes the same storage
deletes what the other one is being pushed (layers uploaded before the
manifest that references them). Instances that share a storage must be ONE
instance with `hosts = [...]`, so that every writer goes read-only together.

How a storage is recognised: a gcops-owned id (`gcops-storage-<32 hex>`) kept
in the symlink `<root>/gcops-storage-id` (hostside/sh/storage_id.sh), created
atomically at the first `run` and read by every instance that mounts the same
storage, from any host (NFS, bind mounts, a SAN...). An S3 storage's id is
derived from its endpoint (or region), bucket and root directory instead.
Trade-offs, and why this one: device+inode of the root only match on one host
and collide across hosts (every fresh ext4 root is inode 2); a fingerprint of
directory listings moves with every push, so two instances read a moment apart
disagree. The id file is one entry beside (not inside) the registry's `docker/`
tree that the registry never reads; as a short symlink it takes no disk block,
so `du`-style figures do not move. Its limits: the first run creates it (a
storage never run by gcops has none yet: `check` only reads it). A screen that
fails (the host unreachable, a root gcops cannot write or read, an unreadable
history) refuses that instance, naming the cause: a guard that cannot look
must not let the run pass unscreened. The other instances go on.

Within one run (`screen`), every targeted instance's id is read in a pre-phase
that ends before any instance's cycle starts; instances with the same id are
all refused. Across runs, the instance that last collected each storage is
kept in the history (`storage_owners`): an instance on a storage last collected
by ANOTHER instance that is still in the config is refused too (the other one
stays writable meanwhile); when that other name is gone from the config (a
rename, or the two were merged into one HA instance) it is only a warning and
the new name takes over. Refused, not warned: a warning in a nightly timer's
log is read after the data is gone. Two names for the very same registry
(same hosts, same config file) write nothing the other does not see
read-only, so they are not refused (`writers`).
"""
from __future__ import annotations

import hashlib
import re
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from ruamel.yaml import YAML

from gcops.state import history
from gcops.errors import GcopsError, ParseError
from gcops.config import Config, Instance
from gcops.containers import resolve as containers
from gcops.transport.hosts import connect
from gcops.hostside import scripts
from gcops.hostside.kv import parse_kv
from gcops.maintenance import ssh_settings
from gcops.registry.config_file import parse_registry_config
from gcops.state.results import OK, InstanceResult

STORAGE_ID = re.compile(r"gcops-storage-[0-9a-f]{32}")


class IdentityError(ParseError):
    """The storage's identity could not be read or created."""


def new_storage_id() -> str:
    return f"gcops-storage-{secrets.token_hex(16)}"


def identity_command(storage_root: str, create: bool) -> str:
    """Shell command printing `storage_id=<id>` (empty when none); with `create`, one is made first
    when the storage has none."""
    return scripts.command("storage_id", storage_root, new_storage_id() if create else "")


def parse_identity(output: str) -> str | None:
    """The id in `identity_command` output, None when the storage has none. Raises IdentityError."""
    value = parse_kv(output).get("storage_id")
    if value is None:
        raise IdentityError(f"unexpected output: {output.strip()[-200:]!r}")
    if not value:
        return None
    if STORAGE_ID.fullmatch(value):
        return value
    raise IdentityError(f"not a gcops storage id: {value[:80]!r}")


@dataclass
class Sighting:
    """What one instance's first host says about its storage."""
    instance: Instance
    storage_root: str | None = None
    storage_id: str | None = None
    error: str | None = None


def sight(instance: Instance, *, create: bool) -> Sighting:
    """Connect to the instance's first host and read (with `create`, make when missing) the id of
    the storage its registry uses. Never raises: a failure is in `error` (`screen` refuses the
    instance for it)."""
    seen = Sighting(instance)
    host = None
    try:
        host = connect(instance.hosts[0], ssh_settings(instance))
        instance = containers.resolve(instance, host, instance.mode)   # host-side paths of a container
        root = instance.vars.get("storage_root") or ""
        if not root:
            text = host.run(f"cat {shlex.quote(instance.vars['config'])}", timeout=60).text
            registry = parse_registry_config(text)
            if registry.storage_driver == "s3":
                seen.storage_root, seen.storage_id = bucket_identity(text)
                return seen
            if registry.storage_driver != "filesystem":
                seen.error = f"storage driver {registry.storage_driver}: no storage id"
                return seen
            root = registry.storage_root or ""
        seen.storage_root = root
        result = host.run(identity_command(root, create), timeout=60, check=False)
        if result.exit_code != 0:
            raise IdentityError(result.stderr.decode("utf-8", "replace").strip()[-200:] or
                                f"exit {result.exit_code}")
        seen.storage_id = parse_identity(result.text)
    except GcopsError as exc:   # that instance is refused for it (screen); the others go on
        seen.error = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
    finally:
        if host is not None:
            host.close()
    return seen


def bucket_identity(config_text: str) -> tuple[str, str]:
    """(a description, the id) of an S3 storage: derived from where the registry keeps it (endpoint or
    region, bucket, root directory), so every instance configured for the same place gets the same id
    without anything being written. Two spellings of one endpoint are not recognised as one."""
    data = YAML(typ="safe").load(config_text) or {}
    params = ((data.get("storage") or {}).get("s3") or {}) if isinstance(data, dict) else {}
    place = (str(params.get("regionendpoint") or params.get("region") or "").rstrip("/"),
             str(params.get("bucket") or ""), str(params.get("rootdirectory") or "").strip("/"))
    digest = hashlib.sha256("\0".join(place).encode("utf-8")).hexdigest()[:32]
    return f"s3://{place[1]}/{place[2]} at {place[0] or 'default endpoint'}", f"gcops-storage-{digest}"


def _hosts_toml(instances: Sequence[Instance]) -> str:
    addresses = [a for i in instances for a in i.hosts]
    return "hosts = [" + ", ".join(f'"{a}"' for a in dict.fromkeys(addresses)) + "]"


def writers(instance: Instance) -> frozenset[tuple[str, str]]:
    """The registries an instance makes read-only: (host, config path) of each of its nodes. Two
    names for the very same registry have the same writers, and are no danger to each other."""
    config = (getattr(instance, "vars", None) or {}).get("config", "")
    return frozenset((host, config) for host in instance.hosts)


def find_shared(sightings: Sequence[Sighting]) -> dict[str, str]:
    """{instance name: refusal} for every instance whose storage id another one of `sightings` has,
    when that other one would leave a different registry writable."""
    groups: dict[str, list[Sighting]] = {}
    for seen in sightings:
        if seen.storage_id:
            groups.setdefault(seen.storage_id, []).append(seen)
    refusals = {}
    for storage_id, group in groups.items():
        if len({writers(s.instance) for s in group}) < 2:
            continue
        names = " and ".join(f"'{s.instance.name}'" for s in group)
        where = ", ".join(f"{s.instance.hosts[0]}:{s.storage_root}" for s in group)
        message = (f"instances {names} use the same storage ({where}; {storage_id}): collecting it while "
                   f"another registry still accepts writes loses data; declare them as one instance "
                   f"with {_hosts_toml([s.instance for s in group])}")
        for seen in group:
            refusals[seen.instance.name] = message
    return refusals


@dataclass
class Screening:
    sightings: list[Sighting]
    refusals: dict[str, str] = field(default_factory=dict)     # instance name -> why it is refused


def screen(config: Config, sightings: list[Sighting], log, store: history.SqlHistory | None = None) -> Screening:
    """Given every targeted instance's sighting (`sight`, all taken before any window opens):
    refuse instances that share one storage, instances on a storage another configured
    instance collected last (`store`, default the config's history), and instances the screen
    could not check (the cause named). Never raises."""
    screening = Screening(sightings, find_shared(sightings))
    store = store if store is not None else history.open_history(config.settings)
    owners, unknown = _owners(config, store, [s.storage_id for s in sightings if s.storage_id and not s.error], log)
    configured = {i.name: i for i in config.instances}
    for seen in sightings:
        name = seen.instance.name
        if seen.error:
            screening.refusals[name] = screen_failed(seen.instance, f"its storage could not be identified: "
                                                                   f"{seen.error}")
            continue
        if name in screening.refusals or not seen.storage_id:
            continue
        if unknown:
            screening.refusals[name] = screen_failed(seen.instance, f"the history of who collected its storage "
                                                                   f"could not be read: {unknown}")
            continue
        owner = owners.get(seen.storage_id)
        if owner is None or owner["instance"] == name:
            continue
        other = configured.get(owner["instance"])
        if other is not None and writers(other) == writers(seen.instance):
            continue                # the same registry under a second name
        if other is None:
            log.warning("storage_owner_changed", instance=name, host=seen.instance.hosts[0],
                        storage_id=seen.storage_id, previous=owner["instance"],
                        detail="this storage was last collected under another name, no longer configured")
            continue
        screening.refusals[name] = (
            f"this storage ({seen.instance.hosts[0]}:{seen.storage_root}; {seen.storage_id}) was last collected "
            f"as instance '{other.name}' (run {owner['run_id']}), which is still configured separately: "
            f"collecting it while '{other.name}' accepts writes loses data; declare them as one instance "
            f"with {_hosts_toml([other, seen.instance])}")
    for name, why in screening.refusals.items():
        log.warning("shared_storage_refused", instance=name, reason=why)
    return screening


def _owners(config: Config, store: history.SqlHistory, ids: list[str], log) -> tuple[dict[str, dict], str]:
    """({storage_id: owner}, "") read from the history, kept in this machine's copy; when a shared history
    cannot be read, the owners this machine knows (its copy and its outbox), said in a warning. When
    neither can be read: ({}, why), and the screen refuses (a guard that cannot look never passes)."""
    state_dir = config.settings.state_dir
    try:
        owners = store.storage_owners(ids)
    except history.HistoryError as exc:
        if isinstance(store, history.SqliteHistory):
            return {}, str(exc)
        try:
            owners = history.owner_copy.known(state_dir, ids)
        except OSError as exc2:
            return {}, f"{exc}; and this machine's own copy: {exc2}"
        log.warning("storage_owners_from_local_copy", error=str(exc), known=len(owners),
                    detail="the shared history cannot be read: storages are checked against the owners "
                           "this machine recorded or read before")
        return owners, ""
    try:
        history.owner_copy.remember(state_dir, owners)
    except OSError as exc:
        log.warning("storage_owners_copy_not_kept", error=str(exc))
    return owners, ""


def screen_failed(instance: Instance, cause: str) -> str:
    """The refusal of an instance the shared-storage screen could not check."""
    return (f"shared-storage screen failed on {instance.hosts[0]}: {cause}; gcops cannot rule out another "
            "registry writing the same storage, so this instance is not collected")


def refused_result(instance: Instance, mode: str, delete_untagged: bool, why: str) -> InstanceResult:
    """The `skipped` result of an instance refused for a shared storage (nothing was touched)."""
    return InstanceResult(name=instance.name, hosts=list(instance.hosts), playbook=instance.playbook.name,
                          mode=mode, delete_untagged=delete_untagged, error=f"refused: {why}")


def owned_storages(screening: Screening, results: Sequence[InstanceResult], run_id: str,
                   when: datetime) -> list[history.StorageOwner]:
    """For every instance collected (status ok): that it owns its storage, to record with the run."""
    ok = {r.name for r in results if r.status == OK}
    return [history.StorageOwner.at(seen.storage_id, seen.instance.name, run_id, when)
            for seen in screening.sightings if seen.storage_id and seen.instance.name in ok]
