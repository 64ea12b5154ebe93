"""Blob descriptors the registry caches in Redis, and purging those of deleted blobs.

With `storage.cache.blobdescriptor: redis` the registry keeps, per blob digest
(distribution's registry/storage/cache/redis/redis.go, same in GitLab's fork):

    blobs::<digest>                         hash: digest, size, mediatype
    repository::<repo>::blobs               set of digests linked in <repo>
    repository::<repo>::blobs::<digest>     hash: the repository's mediatype

GC deletes blob data but not these; a restart clears an in-memory cache, not
Redis. A later push of a layer GC deleted then "exists" (HEAD answers from the
cache), its upload is skipped, and the image cannot be pulled (distribution
#3743, #4269). So after GC, before writes are accepted again, every descriptor
of a deleted blob is removed and the removal verified.

Redis is reached as the registry reaches it: the config's `redis.addr` from the
host's side (`Host.open_tcp`), with its password, db and TLS settings.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import structlog

from gcops.transport.hosts import Host, HostError
from gcops.hostside import scripts
from gcops.hostside.kv import parse_kv_all
from gcops.registry.config_file import RegistryConfigError, _load
from gcops.registry.resp import RedisError, ReplyError, RespClient

BATCH = 500
TIMEOUT = 30.0


class RedisConfigError(RegistryConfigError):
    """The registry config's redis section cannot be used (missing addr, Sentinel, client certificates...)."""


class PurgeFailed(HostError):
    """Descriptors of deleted blobs could not be removed, or some survived: the run must not say ok."""


@dataclass(frozen=True)
class RedisSettings:
    """How the registry reaches its Redis (from the registry config)."""

    address: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    tls_insecure: bool = False     # GitLab's redis.tls.insecure: no certificate verification


@dataclass
class PurgeOutcome:
    digests: int = 0               # digests whose descriptors were looked for
    keys_deleted: int = 0          # blobs::<d> and repository::<repo>::blobs::<d> hashes removed
    set_members_removed: int = 0   # <d> removed from repository::<repo>::blobs sets
    verified: bool = False         # a second pass found none of them left


def _addr(value: object) -> tuple[str, int]:
    text = str(value or "").strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RedisConfigError(f"redis.addr {text!r} is not host:port")
    return host.strip("[]"), int(port)


def redis_settings(config_text: str) -> RedisSettings | None:
    """The registry's Redis, or None when blob descriptors are not cached in Redis. Raises RedisConfigError."""
    data = _load(config_text)
    storage = data.get("storage") if isinstance(data.get("storage"), dict) else {}
    cache = storage.get("cache") if isinstance(storage.get("cache"), dict) else {}
    kind = cache.get("blobdescriptor") or cache.get("layerinfo")   # layerinfo: the old name
    if str(kind).lower() != "redis":
        return None
    redis = data.get("redis")
    if not isinstance(redis, dict):
        raise RedisConfigError("storage.cache.blobdescriptor is redis but there is no redis section")
    if redis.get("mainname") or redis.get("sentinel") or redis.get("mastername"):
        raise RedisConfigError("redis Sentinel (redis.mainname) is not supported for purging blob descriptors")
    addrs = redis.get("addrs")          # distribution v3 (go-redis options)
    if isinstance(addrs, list) and addrs:
        if len(addrs) > 1:
            raise RedisConfigError("several redis.addrs (a cluster) are not supported for purging blob descriptors")
        address, port = _addr(addrs[0])
    else:
        address, port = _addr(redis.get("addr"))
    tls = redis.get("tls") if isinstance(redis.get("tls"), dict) else {}
    if tls.get("certificate") or tls.get("key"):
        raise RedisConfigError("redis TLS client certificates (redis.tls.certificate) are not supported")
    try:
        db = int(redis.get("db") or 0)
    except (TypeError, ValueError):
        raise RedisConfigError(f"redis.db {redis.get('db')!r} is not a number") from None
    enabled = tls.get("enabled")
    return RedisSettings(
        address=address, port=port, db=db,
        username=str(redis["username"]) if redis.get("username") else None,
        password=str(redis["password"]) if redis.get("password") not in (None, "") else None,
        tls=enabled is True or str(enabled).lower() == "true" or bool(tls.get("clientcas")),
        tls_insecure=tls.get("insecure") is True)


def connect(host: Host, settings: RedisSettings) -> RespClient:
    """A logged-in client on the right db, reached from the host's side. Raises PurgeFailed."""
    try:
        sock = host.open_tcp(settings.address, settings.port, timeout=TIMEOUT)
    except HostError as exc:
        raise PurgeFailed(f"cannot reach Redis at {settings.address}:{settings.port} from {host.name}: {exc}") from exc
    sock.settimeout(TIMEOUT)
    try:
        if settings.tls:
            context = ssl.create_default_context()
            if settings.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=settings.address)
        client = RespClient(sock)
        if settings.password is not None:
            client.call("AUTH", *([settings.username] if settings.username else []), settings.password)
        if settings.db:
            client.call("SELECT", settings.db)
        return client
    except ReplyError as exc:
        sock.close()
        raise PurgeFailed(f"Redis at {settings.address}:{settings.port} refused gcops: {exc}") from None
    except (RedisError, OSError, ssl.SSLError) as exc:
        sock.close()
        raise PurgeFailed(f"Redis at {settings.address}:{settings.port}: {exc}") from exc


def _scan(client: RespClient, pattern: str) -> Iterator[str]:
    cursor = b"0"
    while True:
        cursor, keys = client.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        yield from (k.decode("utf-8", "replace") for k in keys)
        if cursor == b"0":
            return


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), BATCH):
        yield items[i:i + BATCH]


def _repository_keys(client: RespClient, digests: set[str]) -> tuple[list[str], list[str]]:
    """(repository-scoped hashes of these digests, every repository blob set)."""
    hashes, sets = [], []
    for key in _scan(client, "repository::*"):
        if key.endswith("::blobs"):
            sets.append(key)
        elif "::blobs::" in key and key.rsplit("::blobs::", 1)[1] in digests:
            hashes.append(key)
    return hashes, sets


def _members_left(client: RespClient, sets: list[str], digests: list[str]) -> int:
    left = 0
    for key in sets:
        for chunk in _chunks(digests):
            try:
                left += sum(client.call("SMISMEMBER", key, *chunk))
            except ReplyError:     # Redis < 6.2
                left += sum(client.pipeline([("SISMEMBER", key, d) for d in chunk]))
    return left


def purge_descriptors(host: Host, settings: RedisSettings, digests: Iterable[str]) -> PurgeOutcome:
    """Remove every cached descriptor of `digests`, then verify none is left. Raises PurgeFailed."""
    wanted = sorted(set(digests))
    outcome = PurgeOutcome(digests=len(wanted))
    if not wanted:
        outcome.verified = True
        return outcome
    log = structlog.get_logger().bind(host=host.name)
    client = connect(host, settings)
    try:
        target = set(wanted)
        for chunk in _chunks(wanted):
            outcome.keys_deleted += client.call("DEL", *(f"blobs::{d}" for d in chunk))
        hashes, sets = _repository_keys(client, target)
        for chunk in _chunks(hashes):
            outcome.keys_deleted += client.call("DEL", *chunk)
        for key in sets:
            for chunk in _chunks(wanted):
                outcome.set_members_removed += client.call("SREM", key, *chunk)
        left = sum(client.call("EXISTS", *(f"blobs::{d}" for d in chunk)) for chunk in _chunks(wanted))
        hashes_left, sets = _repository_keys(client, target)
        left += len(hashes_left) + _members_left(client, sets, wanted)
    except (RedisError, OSError) as exc:
        raise PurgeFailed(f"purging blob descriptors in Redis at {settings.address}:{settings.port} failed: "
                          f"{exc}") from exc
    finally:
        client.close()
    if left:
        raise PurgeFailed(f"{left} descriptors of deleted blobs are still in Redis at "
                          f"{settings.address}:{settings.port} after the purge")
    outcome.verified = True
    log.info("redis_descriptors_purged", digests=outcome.digests, keys_deleted=outcome.keys_deleted,
             set_members_removed=outcome.set_members_removed)
    return outcome


def cached_digests(host: Host, settings: RedisSettings) -> set[str]:
    """Every digest the cache describes (global hashes, repository hashes and set members). Raises PurgeFailed."""
    client = connect(host, settings)
    found: set[str] = set()
    try:
        for key in _scan(client, "blobs::*"):
            found.add(key[len("blobs::"):])
        for key in _scan(client, "repository::*"):
            if key.endswith("::blobs"):
                cursor = b"0"
                while True:
                    cursor, members = client.call("SSCAN", key, cursor, "COUNT", 1000)
                    found.update(m.decode("utf-8", "replace") for m in members)
                    if cursor == b"0":
                        break
            elif "::blobs::" in key:
                found.add(key.rsplit("::blobs::", 1)[1])
    except (RedisError, OSError) as exc:
        raise PurgeFailed(f"reading blob descriptors from Redis at {settings.address}:{settings.port} "
                          f"failed: {exc}") from exc
    finally:
        client.close()
    return found


def missing_blobs(host: Host, storage_root: str, digests: Iterable[str]) -> set[str]:
    """Of `digests`, those with no data in the filesystem storage under `storage_root`. Raises PurgeFailed."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    try:
        result = host.run(scripts.command("blobs_missing", storage_root), input=("\n".join(wanted) + "\n").encode(),
                          timeout=600)
    except HostError as exc:
        raise PurgeFailed(f"{host.name}: cannot check which cached blobs are gone: {exc}") from exc
    return set(parse_kv_all(result.text).get("missing", []))


def purge_stale(host: Host, settings: RedisSettings, storage_root: str,
                deleted: Iterable[str] = ()) -> PurgeOutcome:
    """Purge the descriptors of `deleted` and of every cached blob no longer in the (filesystem) storage.

    Covering blobs missing from the storage also repairs descriptors an earlier
    GC (by gcops or by hand) left behind. Raises PurgeFailed.
    """
    stale = missing_blobs(host, storage_root, cached_digests(host, settings))
    return purge_descriptors(host, settings, stale | set(deleted))
