"""Registries on S3-compatible storage: where the bucket is, how gcops reaches it, what it holds.

The registry's own `storage.s3` section says where its data lives (bucket,
region, regionendpoint, rootdirectory, keys); `[instance.s3]` overrides any of
that as the gcops machine sees it (the endpoint is often reached by another
name from here). Credentials: an explicit `profile`, else the registry
config's keys, else the standard AWS credential chain of this machine.

The secret key lives only in `S3Settings.secret_key` (left out of repr) and in
the botocore client: it is never logged, printed, recorded or put on a
command line. Measuring is in `s3_listing.py`; this module is settings, the
client, the preflight checks and the sizes of named blobs.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gcops.errors import ParseError
from gcops.config.model import S3Overrides
from gcops.storage.filesystem import StorageSnapshot

DEFAULT_CONCURRENCY = 16
LOCKFILE = "docker/registry/lockfiles/database-in-use"
REPOSITORIES = "docker/registry/v2/repositories/"
BLOBS = "docker/registry/v2/blobs/sha256/"
SUPPORTED = ("filesystem", "s3")
DELETE_UNTAGGED_REFUSED = ("--delete-untagged is not supported on S3 storage yet (gcops' protection of index "
                           "children reads the repository links on the host's filesystem); run without it")


class S3ConfigError(ParseError):
    """The registry's storage.s3 section (with [instance.s3]) does not say where the bucket is."""


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str | None
    endpoint_url: str | None         # as the gcops machine reaches it; None: AWS' own endpoint
    rootdirectory: str               # without leading or trailing "/"; "" = bucket root
    path_style: bool
    verify_tls: bool
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def prefix(self) -> str:
        """Key prefix of everything the registry stores: "<root>/" or ""."""
        return f"{self.rootdirectory}/" if self.rootdirectory else ""

    @property
    def where(self) -> str:
        """s3://bucket/root at endpoint, for messages (no credentials)."""
        at = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.rootdirectory}{at}"

    @property
    def credential_source(self) -> str:
        if self.profile:
            return f"profile {self.profile}"
        return "registry config keys" if self.access_key else "AWS credential chain"


def s3_parameters(config_bytes: bytes) -> dict:
    """The registry config's storage.s3 mapping ({} when absent). Raises S3ConfigError."""
    try:
        data = YAML(typ="safe").load(config_bytes.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError) as exc:
        raise S3ConfigError(f"cannot read the registry config: {str(exc).splitlines()[0]}") from exc
    params = ((data or {}).get("storage") or {}).get("s3") or {}
    if not isinstance(params, dict):
        raise S3ConfigError("storage.s3 is not a mapping")
    return params


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _bool(value, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def settings_from(params: dict, overrides: S3Overrides | None) -> S3Settings:
    """Merge storage.s3 `params` with `[instance.s3]`. Raises S3ConfigError naming what is missing."""
    o = overrides or S3Overrides()
    bucket = o.bucket or _text(params.get("bucket"))
    if not bucket:
        raise S3ConfigError("storage.s3.bucket is not set (set it in the registry config or [instance.s3] bucket)")
    secure = _bool(params.get("secure"), True)
    endpoint = o.endpoint_url or _text(params.get("regionendpoint")) or None
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if secure else "http://") + endpoint   # as the registry's AWS SDK does
    root = o.rootdirectory if o.rootdirectory is not None else _text(params.get("rootdirectory"))
    root = posixpath.normpath("/" + root).strip("/") if root else ""
    access, secret = _text(params.get("accesskey")) or None, _text(params.get("secretkey")) or None
    if o.profile:
        access = secret = None
    return S3Settings(
        bucket=bucket, region=o.region or _text(params.get("region")) or None, endpoint_url=endpoint,
        rootdirectory=root,
        # distribution 2.8 forces path-style addressing whenever regionendpoint is set
        path_style=_bool(params.get("forcepathstyle"), bool(_text(params.get("regionendpoint")))) or bool(o.endpoint_url),
        verify_tls=not _bool(params.get("skipverify"), False), profile=o.profile,
        access_key=access if access and secret else None, secret_key=secret if access and secret else None,
        concurrency=o.concurrency or DEFAULT_CONCURRENCY)


def make_client(settings: S3Settings, *, timeout: float = 20, max_attempts: int = 10):
    """A thread-safe botocore S3 client: retries with backoff on SlowDown/503/throttling (standard mode)."""
    import boto3
    from botocore.config import Config as BotoConfig

    import botocore.session

    core = botocore.session.get_session()
    # gcops never reads LastModified: parsing it (dateutil, per key) costs more client CPU than the rest
    # of a 1000-key page; keep the text.
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    session = boto3.session.Session(botocore_session=core, profile_name=settings.profile or None)
    config = BotoConfig(
        region_name=settings.region or "us-east-1",
        retries={"mode": "standard", "max_attempts": max_attempts},
        max_pool_connections=max(settings.concurrency, 10) + 4,
        connect_timeout=timeout, read_timeout=timeout * 3,
        s3={"addressing_style": "path" if settings.path_style else "auto"},
        signature_version="s3v4")
    return session.client("s3", endpoint_url=settings.endpoint_url, verify=settings.verify_tls,
                          aws_access_key_id=settings.access_key, aws_secret_access_key=settings.secret_key,
                          config=config)


def describe_error(exc: Exception) -> str:
    """One line for a boto/botocore failure, naming the S3 error code; never credentials."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ProfileNotFound

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}: {err.get('Message') or 'no message'}"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot connect to {exc.kwargs.get('endpoint_url', 'the endpoint')}"
    if isinstance(exc, (NoCredentialsError, ProfileNotFound)):
        return str(exc)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or "")


@dataclass
class BucketFacts:
    """What preflight learned about the bucket, for `evaluate_bucket`."""

    settings: S3Settings | None = None
    error: str | None = None          # settings could not be made
    reachable: str | None = None      # None ok, else why not
    credentials: str | None = None
    bucket: str | None = None
    root_present: bool | None = None
    repositories: bool | None = None     # any object under docker/registry/v2/repositories/
    database_in_use: bool | None = None


AUTH_CODES = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidClientTokenId",
              "ExpiredToken", "AuthorizationHeaderMalformed", "403")


def inspect_bucket(settings: S3Settings) -> BucketFacts:
    """Reach the bucket (HEAD bucket, a one-key listing, HEAD of the lockfile). Never raises for S3 trouble."""
    from botocore.exceptions import BotoCoreError, ClientError

    facts = BucketFacts(settings=settings)
    try:
        client = make_client(settings, timeout=5, max_attempts=2)
        page = client.list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix + "docker/", MaxKeys=1)
        facts.root_present = bool(page.get("KeyCount") or page.get("Contents"))
        page = client.list_objects_v2(Bucket=settings.bucket, Prefix=settings.prefix + REPOSITORIES, MaxKeys=1)
        facts.repositories = bool(page.get("KeyCount") or page.get("Contents"))
        try:
            client.head_object(Bucket=settings.bucket, Key=settings.prefix + LOCKFILE)
            facts.database_in_use = True
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise
            facts.database_in_use = False
    except ClientError as exc:
        code, line = _code(exc), describe_error(exc)
        if code in AUTH_CODES:
            facts.credentials = f"{settings.credential_source} refused: {line}"
        elif code in ("404", "NoSuchBucket", "NotFound"):
            facts.bucket = f"bucket {settings.bucket} does not exist ({line})"
        else:
            facts.reachable = line
    except BotoCoreError as exc:
        from botocore.exceptions import NoCredentialsError, ProfileNotFound

        if isinstance(exc, (NoCredentialsError, ProfileNotFound)):
            facts.credentials = describe_error(exc)
        else:
            facts.reachable = describe_error(exc)
    return facts


def evaluate_bucket(facts: BucketFacts) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) checks in reading order, stopping at the first that fails. Pure."""
    if facts.settings is None:
        return [("storage_s3", False, facts.error or "storage.s3 cannot be read")]
    s = facts.settings
    checks = [("storage_s3", True, f"{s.where} ({s.credential_source})")]
    for name, problem in (("bucket_reachable", facts.reachable), ("s3_credentials", facts.credentials),
                          ("bucket", facts.bucket)):
        if problem is not None:
            hint = {"bucket_reachable": f"{problem}; set [instance.s3] endpoint_url to the address this machine "
                                        "reaches",
                    "s3_credentials": problem, "bucket": problem}[name]
            return checks + [(name, False, hint)]
        checks.append((name, True, {"bucket_reachable": s.endpoint_url or "AWS S3",
                                    "s3_credentials": f"accepted ({s.credential_source})",
                                    "bucket": s.bucket}[name]))
    if facts.database_in_use:
        return checks + [("storage_root", False, f"{s.prefix}{LOCKFILE} exists in the bucket: the metadata "
                                                  "database owns this storage; offline GC would delete live data")]
    if not facts.root_present:
        return checks + [("storage_root", False, f"nothing under s3://{s.bucket}/{s.prefix}docker/: "
                                                  "wrong bucket or rootdirectory?")]
    return checks + [("storage_root", True, f"s3://{s.bucket}/{s.prefix}docker/")]


def gather(config_bytes: bytes, overrides: S3Overrides | None) -> BucketFacts:
    """Settings from the registry config and [instance.s3], then the bucket inspected. Never raises."""
    try:
        settings = settings_from(s3_parameters(config_bytes), overrides)
    except S3ConfigError as exc:
        return BucketFacts(error=str(exc))
    return inspect_bucket(settings)


_SECRET_LINE = re.compile(r"(?im)^([ +-]?[ \t]*(?:secretkey|sessiontoken)[ \t]*:[ \t]*)(\S.*)$")


def redact(config_text: str) -> str:
    """Config text (or a diff of it) with the S3 secret key's value replaced by ***."""
    return _SECRET_LINE.sub(lambda m: m.group(1) + "***", config_text)


def journal_safe(config_bytes: bytes) -> bool:
    """False when the config holds an S3 secret key, or when that cannot be told (it cannot be read):
    such bytes must not be copied to gcops' state dir (the host keeps its own copy)."""
    try:
        return not _text(s3_parameters(config_bytes).get("secretkey"))
    except S3ConfigError:
        return False


def measure(settings: S3Settings, on_progress: Callable[[int, int], None] | None = None) -> StorageSnapshot:
    """Bytes and blobs under the registry root, listed in parallel. Raises S3Error."""
    from gcops.storage.s3_listing import list_storage

    listing = list_storage(make_client(settings), settings.bucket, settings.prefix,
                           concurrency=settings.concurrency, on_progress=on_progress)
    return StorageSnapshot(storage_bytes=listing.total_bytes, fs_used_bytes=None, blobs=listing.blobs)


def blob_sizes(settings: S3Settings, digests: Iterable[str]) -> tuple[int, StorageSnapshot]:
    """(bytes of the named blobs' data objects, the storage) from one parallel listing of the bucket.

    A digest with no object counts 0. Raises S3Error."""
    from gcops.storage.s3_listing import list_storage

    wanted = frozenset(d.split(":", 1)[-1] for d in digests)
    listing = list_storage(make_client(settings), settings.bucket, settings.prefix,
                           concurrency=settings.concurrency, select=wanted)
    return listing.selected_bytes, StorageSnapshot(storage_bytes=listing.total_bytes, fs_used_bytes=None,
                                                   blobs=listing.blobs)
