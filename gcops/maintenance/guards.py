"""Two guards of the run's window: read-only proven with credentials, stale Redis descriptors purged.

- `prove_read_only`: behind authentication the anonymous write probe gets
  401/403 whatever the registry's mode; with [instance.probe] credentials the
  probe logs in (basic or token auth) from the host's side and must get 405.
- `redis_settings_of` (before the window: refuse what cannot be purged) and
  `purge_redis` (inside the window, after GC, before writes are accepted
  again): no cached descriptor of a deleted blob survives.
"""
from __future__ import annotations

import structlog

from gcops.transport.hosts import Host
from gcops.registry import host_http, probe, redis_cache


def prove_read_only(host: Host, registry_url: str, creds: probe.ProbeCredentials, *, instance: str,
                    host_ca_file: str = "") -> probe.Verification:
    """Write-probe with the credentials from the host's side; ok_to_collect only on a 405.

    `host_ca_file`: the CA bundle on the host, for curl where forwarding is refused.
    Raises HostError only when the host is gone.
    """
    log = structlog.get_logger().bind(instance=instance, host=host.name)
    http = host_http.transport_for(host, ca_file=creds.ca_file, host_ca_file=host_ca_file)
    seen = probe.write_probe(http, registry_url, creds)
    verdict = probe.decide(seen.status, "unknown", True)
    fields = dict(write_status=seen.status, auth=seen.auth, transport="tunnel" if http.forwarding else "curl",
                  repository=creds.repository)
    if seen.detail:
        fields["detail"] = seen.detail
    if verdict.ok_to_collect:
        log.info("read_only_verified", **fields)
    else:
        log.error("read_only_not_proven", reason=verdict.reason, **fields)
    return verdict


def redis_settings_of(config_bytes: bytes) -> redis_cache.RedisSettings | None:
    """Before anything changes: the registry's Redis, if it caches blob descriptors there.

    Raises RedisConfigError (refuse the instance: its cache could not be purged).
    """
    return redis_cache.redis_settings(config_bytes.decode("utf-8", "replace"))


def purge_redis(host: Host, settings: redis_cache.RedisSettings, storage_root: str | None,
                deleted: list[str] | tuple[str, ...] = ()) -> redis_cache.PurgeOutcome:
    """After GC: remove the descriptors of `deleted` and of every cached blob gone from the storage.

    `storage_root` None (not a filesystem storage): only `deleted`. Raises PurgeFailed.
    """
    if storage_root is None:
        return redis_cache.purge_descriptors(host, settings, deleted)
    return redis_cache.purge_stale(host, settings, storage_root, deleted)
