"""Two guards of the run's window: read-only proven behind authentication, stale Redis descriptors purged.

The window calls them in this order, per node:

    mark = read_only_mark(host, config_path)          # before the read-only config is written
    ... write the read-only config, restart ...
    v = verify_read_only(host, instance, mark)        # before GC; refuse GC unless v.ok_to_collect
    ... GC ...
    purge_redis(host, config_bytes, storage_root)     # after GC, BEFORE writes are accepted again

`needs_verification` says when the host-side window check (anonymous write
probe, 405 or 401 accepted) is not enough: the registry wants authentication,
or the instance has [instance.probe] credentials.
"""
from __future__ import annotations

import structlog

from gcops.config import Instance
from gcops.hosts import Host
from gcops.registry import host_http, probe, redis_cache, restart_check

AUTH_STATUSES = ("401", "403")


def needs_verification(instance: Instance, registry_http: str | None, mode: str) -> bool:
    """True when read-only must be judged here: readonly mode, and auth in front or credentials given."""
    return mode == "readonly" and (instance.probe is not None or registry_http in AUTH_STATUSES)


def read_only_mark(host: Host, config_path: str) -> float:
    """The host's boot-clock time now, before the config is written. Raises HostError, ValueError."""
    return restart_check.processes(host, config_path).uptime


def verify_read_only(host: Host, instance: Instance, mark: float | None) -> probe.Verification:
    """Write-probe the registry from the host's side (with the instance's credentials) and judge it.

    Without credentials and behind auth, the registry's processes are compared
    with `mark` (restart_check). Raises HostError only when the host is gone.
    """
    log = structlog.get_logger().bind(instance=instance.name, host=host.name)
    creds = instance.probe
    http = host_http.transport_for(host, ca_file=creds.ca_file if creds else None)
    seen = probe.write_probe(http, instance.vars["registry_url"], creds)
    restarted = restart_check.UNKNOWN
    if seen.status in (401, 403) and creds is None and mark is not None:
        try:
            now = restart_check.processes(host, instance.vars["config"])
            restarted = restart_check.restarted_since(mark, now)
        except ValueError:
            restarted = restart_check.UNKNOWN
    verdict = probe.decide(seen.status, restarted, creds is not None)
    fields = dict(write_status=seen.status, auth=seen.auth, restarted=restarted, credentials=creds is not None,
                  transport="tunnel" if http.forwarding else "curl")
    if seen.detail:
        fields["detail"] = seen.detail
    if not verdict.ok_to_collect:
        log.error("read_only_not_proven", reason=verdict.reason, **fields)
    elif not verdict.verified:
        log.warning("read_only_not_verified", reason=verdict.reason, **fields)
    else:
        log.info("read_only_verified", **fields)
    return verdict


def check_redis_config(config_bytes: bytes) -> redis_cache.RedisSettings | None:
    """Before anything changes: the registry's Redis settings, if it caches descriptors there.

    Raises RedisConfigError (refuse the instance: its cache could not be purged).
    """
    return redis_cache.redis_settings(config_bytes.decode("utf-8", "replace"))


def purge_redis(host: Host, config_bytes: bytes, storage_root: str | None,
                deleted: tuple[str, ...] = ()) -> redis_cache.PurgeOutcome | None:
    """After GC: remove the Redis descriptors of every blob gone from the storage (and of `deleted`).

    None when the registry does not cache descriptors in Redis. Raises
    PurgeFailed, RedisConfigError.
    """
    settings = check_redis_config(config_bytes)
    if settings is None:
        return None
    if storage_root is None:   # not a filesystem storage: only what GC said it deleted
        return redis_cache.purge_descriptors(host, settings, deleted)
    return redis_cache.purge_stale(host, settings, storage_root, deleted)
