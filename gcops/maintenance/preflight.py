"""Preflight: facts about one registry node, and the checks that decide whether offline GC is safe.

`gather` costs one round trip (plus one for the storage). `evaluate` is pure:
it turns facts into named checks, used both by `gcops check` (as a table) and
by `run`/`plan` (the first failing check refuses the instance, changing nothing).
"""
from __future__ import annotations

import base64
import binascii
import socket
from dataclasses import dataclass, field

import psutil

from gcops import hostside
from gcops.errors import LockHeld, Refused
from gcops.hostside.kv import parse_kv
from gcops.hostside.outcomes import TLS_CURL_CODES
from gcops.containers.registry_env import apply as apply_registry_env, yaml_bytes
from gcops.registry.config_file import (RegistryConfig, RegistryConfigError, load_plain, parse_registry_config,
                                        registry_config_from)
from gcops.storage import filesystem, s3
from gcops.transport.hosts import Host

STALE_LOCK_SECONDS = 60   # past the watchdog deadline by this much, a lock is abandoned
UNARMED_LOCK_SECONDS = 900   # a lock whose holder never wrote its deadline (enter died) is abandoned after this
STATE_ROOM_KIB = 256      # room the host-side record of a run needs beside the config (scripts, links, marker)
GC_LOG_BYTES_PER_BLOB = 200   # the GC's own output, per blob in the storage (upstream: ~1.5 lines a blob)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class NodeFacts:
    address: str
    kv: dict[str, str] = field(default_factory=dict)
    config_bytes: bytes | None = None
    effective_config: bytes | None = None   # what the registry runs with: the file, or it with REGISTRY_* env
    config_error: str | None = None
    registry: RegistryConfig | None = None
    storage_root: str | None = None
    storage_state: str | None = None     # "ok", "storage_missing", "database_in_use"
    storage_output: str = ""
    snapshot: filesystem.StorageSnapshot | None = None
    bucket: s3.BucketFacts | None = None     # S3 driver: the bucket as this machine sees it

    @property
    def lock(self) -> tuple[str, int | None] | None:
        """(run id, its watchdog deadline) of the host's lock; the deadline None while its holder has not
        written it yet (a lock just taken)."""
        value = self.kv.get("lock")
        if value is None:
            return None
        run_id, _, deadline = value.partition(" ")
        try:
            return run_id, int(deadline) if deadline.strip() else None
        except ValueError:
            return run_id, None

    @property
    def lock_is_stale(self) -> bool:
        """The lock's run is gone: its own watchdog deadline long past, its gcops (on this machine) dead, or
        it never armed its watchdog and is long old. A lock just taken (no deadline of its own yet) is held."""
        lock = self.lock
        if lock is None:
            return False
        now = int(self.kv.get("now", "0") or 0)
        if lock[1] is not None:
            return now > lock[1] + STALE_LOCK_SECONDS or self.lock_holder_dead
        since = self.kv.get("lock_since", "")
        since = int(since) if since.isdigit() else now
        return now > since + UNARMED_LOCK_SECONDS or self.lock_holder_dead

    @property
    def lock_holder_dead(self) -> bool:
        """lock/owner reads "gcops@<machine> pid <n> run <id>": on this machine, is that process gone?"""
        parts = self.kv.get("lock_owner", "").split()
        if len(parts) >= 3 and parts[0] == f"gcops@{socket.gethostname()}" and parts[1] == "pid":
            try:
                return not psutil.pid_exists(int(parts[2]))
            except ValueError:
                return False
        return False

    def room_needed_kib(self) -> int:
        """Free KiB the config's filesystem needs for this run's record and the GC's output."""
        config = int(self.kv.get("config_bytes", "0") or 0)
        blobs = self.snapshot.blobs if self.snapshot is not None else 0
        return STATE_ROOM_KIB + 2 * config // 1024 + blobs * GC_LOG_BYTES_PER_BLOB // 1024

    @property
    def empty_storage(self) -> bool:
        """No repository yet: nothing to collect (2.8's GC would even fail on the missing path)."""
        if self.bucket is not None:
            return self.bucket.repositories is False
        return parse_kv(self.storage_output).get("repositories") == "no"

    @property
    def leftover(self) -> str | None:
        return self.kv.get("marker")


def gather(host: Host, vars: dict[str, str], measure: bool = False, s3_overrides=None,
           on_progress=None, registry_env: dict[str, str] | None = None) -> NodeFacts:
    """Read the node's facts; with `measure`, the storage check also measures it (same round trip):
    `snapshot` is then set. S3 storage is inspected (and measured) from this machine, with
    `s3_overrides` ([instance.s3]); `on_progress(objects, bytes)` follows a long measurement.
    `registry_env`: REGISTRY_* variables a container applies over the file (what the registry runs with)."""
    facts = NodeFacts(address=host.name)
    script = hostside.preflight_command(vars["config"], vars["registry_url"], vars["registry"],
                                       vars.get("registry_ca_file", ""))
    text = host.run(script, timeout=60).text
    head, sep, b64 = text.partition(hostside.CONFIG_SEPARATOR)
    facts.kv = parse_kv(head)
    if sep:
        try:
            facts.config_bytes = base64.b64decode("".join(b64.split()), validate=True)
            facts.registry = parse_registry_config(facts.config_bytes.decode("utf-8"))
            facts.effective_config = facts.config_bytes
            if registry_env:
                effective = apply_registry_env(load_plain(facts.config_bytes.decode("utf-8")), registry_env)
                facts.registry = registry_config_from(effective)
                facts.effective_config = yaml_bytes(effective)
        except (binascii.Error, UnicodeDecodeError) as exc:
            facts.config_error = f"cannot decode {vars['config']}: {exc}"
        except RegistryConfigError as exc:
            facts.config_error = f"{vars['config']}: {exc}"
    facts.storage_root = vars.get("storage_root") or (facts.registry.storage_root if facts.registry else None)
    if facts.registry and facts.registry.storage_driver == "s3":
        facts.bucket = s3.gather(facts.effective_config, s3_overrides)
        if facts.bucket.settings is not None:
            facts.storage_root = facts.bucket.settings.where
        if measure and all(ok for _, ok, _ in s3.evaluate_bucket(facts.bucket)):
            facts.snapshot = s3.measure(facts.bucket.settings, on_progress)
        return facts
    if facts.storage_root and facts.registry and facts.registry.storage_driver == "filesystem":
        command = filesystem.measure_command(facts.storage_root) if measure else ""
        result = host.run(hostside.storage_check_command(facts.storage_root, command),
                          timeout=None, check=False)
        facts.storage_output = result.text
        if result.exit_code == 10:
            facts.storage_state = "storage_missing"
        elif result.exit_code == 11:
            facts.storage_state = "database_in_use"
        elif result.exit_code == 0:
            facts.storage_state = "ok"
            if measure:
                facts.snapshot = filesystem.parse_measurement(result.text)
        else:
            facts.storage_state = f"error: {result.stderr.decode('utf-8', 'replace').strip()[:200]}"
    return facts


def evaluate(facts: NodeFacts, vars: dict[str, str]) -> list[Check]:
    """Named checks, in the order a person reads them. Pure."""
    cfg = vars["config"]
    checks = [Check("reachable", True, facts.address)]
    if facts.config_bytes is None and facts.config_error is None:
        checks.append(Check("config_readable", False, f"{cfg} is missing or unreadable"))
        return checks
    checks.append(Check("config_readable", True, cfg))
    reg = facts.registry
    if reg is None:
        checks.append(Check("config_parsed", False, facts.config_error or f"{cfg}: cannot parse"))
        return checks
    checks.append(Check("config_parsed", True, "read-only already on" if reg.read_only else "ok"))
    if reg.uses_metadata_database:
        checks.append(Check("metadata_database", False,
                            f"database.enabled is {reg.database}: offline GC would delete live data; "
                            "use the registry's online GC instead"))
    else:
        checks.append(Check("metadata_database", True, "not in use"))
    if reg.storage_driver not in s3.SUPPORTED:
        checks.append(Check("storage_driver", False,
                            f"storage driver {reg.storage_driver or 'unknown'}: gcops supports the filesystem "
                            "and s3 drivers"))
        return checks
    checks.append(Check("storage_driver", True, reg.storage_driver))
    state = facts.storage_state
    if reg.storage_driver == "s3":   # the storage checks come from the bucket
        checks.extend(Check(name, ok, detail) for name, ok, detail in s3.evaluate_bucket(facts.bucket))
    elif state == "storage_missing":
        checks.append(Check("storage_root", False, f"storage root {facts.storage_root} does not exist"))
    elif state == "database_in_use":
        checks.append(Check("storage_root", False,
                            f"{facts.storage_root}/docker/registry/lockfiles/database-in-use exists: "
                            "the metadata database owns this storage; offline GC would delete live data"))
    elif state == "ok":
        checks.append(Check("storage_root", True, facts.storage_root or ""))
    else:
        checks.append(Check("storage_root", False, f"cannot check {facts.storage_root}: {state}"))
    checks.append(_answering(facts, vars))
    checks.append(_gc_binary(facts, vars["registry"]))
    checks.append(Check("curl", bool(facts.kv.get("curl")),
                        facts.kv.get("curl") or "no curl on the host: gcops probes the registry with it"))
    checks.append(Check("setsid", facts.kv.get("setsid") == "yes",
                        "present" if facts.kv.get("setsid") == "yes"
                        else "no setsid on the host (util-linux or BusyBox): gcops runs GC in a session of its own"))
    checks.extend(_writable(facts, cfg))
    lock = facts.lock
    if lock is None:
        checks.append(Check("lock", True, "free"))
    elif facts.lock_is_stale:
        checks.append(Check("lock", True, f"abandoned by run {lock[0]} (will be recovered first)"))
    else:
        checks.append(Check("lock", False, f"held by run {lock[0]}"))
    if facts.leftover and lock is None:
        checks.append(Check("leftover", True, f"changes left by {facts.leftover} (will be recovered first)"))
    return checks


def _gc_binary(facts: NodeFacts, registry: str) -> Check:
    """The registry binary as the host's sh finds it: a path, or a bare name looked up in the host's PATH."""
    found = facts.kv.get("gc_binary_path", "")
    if facts.kv.get("gc_binary") == "yes":
        return Check("gc_binary", True, registry if found in ("", registry) else f"{registry} ({found})")
    if "/" in registry:
        return Check("gc_binary", False, f"{registry} not executable")
    return Check("gc_binary", False, f"{registry} not found as an executable file in the host's PATH "
                                     f"({facts.kv.get('path', '?')}); give vars.registry as a full path")


def _answering(facts: NodeFacts, vars: dict[str, str]) -> Check:
    url = vars["registry_url"]
    code = facts.kv.get("registry_http", "000")
    if code in ("200", "401"):
        return Check("registry_answering", True, f"{url}/v2/ answered {code}")
    if facts.kv.get("curl_rc") in TLS_CURL_CODES:
        return Check("registry_answering", False,
                     f"{url}/v2/: TLS certificate problem (curl exit {facts.kv['curl_rc']}); if the registry's "
                     "certificate comes from a private CA, set vars.registry_ca_file to that CA bundle on the host")
    return Check("registry_answering", False,
                 f"{url}/v2/ answered {code}" if code != "000" else f"{url}/v2/ did not answer")


def _writable(facts: NodeFacts, cfg: str) -> list[Check]:
    """Can this run write its record beside the config (and the config itself), with room to spare?"""
    if facts.kv.get("config_dir_writable") == "no" or facts.kv.get("config_target_dir_writable") == "no":
        where = facts.kv.get("config_target") if facts.kv.get("config_target_dir_writable") == "no" else cfg
        return [Check("config_writable", False,
                      f"the SSH user may not write beside {where} (permission denied): set sudo = true for this "
                      "instance, or connect as a user who may change the registry config")]
    checks = [Check("config_writable", True, "ok")]
    try:
        avail = int(facts.kv.get("config_fs_avail_kib", ""))
    except ValueError:
        return checks + [Check("free_space", False, f"could not read the free space beside {cfg} (df)")]
    need = facts.room_needed_kib()
    checks.append(Check("free_space", avail >= need,
                        f"{avail} KiB free beside {cfg}" if avail >= need else
                        f"only {avail} KiB free on the filesystem of {cfg}; this run needs {need} KiB for its "
                        "record and the GC's output: free some space there first"))
    return checks


def refuse_unless_safe(checks: list[Check]) -> None:
    """Raise LockHeld or Refused for the first failing check."""
    for check in checks:
        if not check.ok:
            if check.name == "lock":
                raise LockHeld(check.detail)
            raise Refused(f"{check.name}: {check.detail}")
