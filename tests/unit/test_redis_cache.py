"""The registry config's Redis settings, and the RESP client against a real redis-server on loopback."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from gcops.transport.hosts import LocalHost
from gcops.registry import redis_cache
from gcops.registry.redis_cache import PurgeFailed, RedisConfigError, RedisSettings, redis_settings
from gcops.registry.resp import ReplyError, encode

BASE = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /srv\n  cache:\n    blobdescriptor: {kind}\n"


@pytest.mark.parametrize("kind", ["inmemory", "''"])
def test_no_redis_cache_means_nothing_to_purge(kind):
    assert redis_settings(BASE.format(kind=kind) + "redis:\n  addr: r:6379\n") is None


def test_distribution_2_8_settings():
    s = redis_settings(BASE.format(kind="redis") + "redis:\n  addr: redis.internal:6380\n  password: pw\n  db: 3\n")
    assert s == RedisSettings("redis.internal", 6380, db=3, password="pw")
    assert "pw" not in repr(s)


def test_layerinfo_is_the_old_name_of_blobdescriptor():
    text = "version: 0.1\nstorage:\n  cache:\n    layerinfo: redis\nredis:\n  addr: localhost:6379\n"
    assert redis_settings(text) == RedisSettings("localhost", 6379)


def test_gitlab_tls_and_v3_addrs():
    gitlab = redis_settings(BASE.format(kind="redis") + "redis:\n  addr: r:6379\n  username: reg\n  password: p\n"
                            "  tls:\n    enabled: true\n    insecure: true\n")
    assert (gitlab.tls, gitlab.tls_insecure, gitlab.username) == (True, True, "reg")
    v3 = redis_settings(BASE.format(kind="redis") + "redis:\n  addrs: ['[::1]:6379']\n")
    assert (v3.address, v3.port, v3.tls) == ("::1", 6379, False)


@pytest.mark.parametrize("section, fragment", [
    ("", "no redis section"),
    ("redis:\n  addr: nohostport\n", "not host:port"),
    ("redis:\n  addr: a:1,b:2\n  mainname: main\n", "Sentinel"),
    ("redis:\n  addrs: [a:1, b:2]\n", "cluster"),
    ("redis:\n  addr: a:1\n  tls:\n    certificate: /c.pem\n    key: /k.pem\n", "client certificates"),
    ("redis:\n  addr: a:1\n  db: x\n", "redis.db"),
])
def test_unusable_redis_sections_are_refused(section, fragment):
    with pytest.raises(RedisConfigError, match=fragment):
        redis_settings(BASE.format(kind="redis") + section)


def test_encode_is_resp_bulk_strings():
    assert encode("SET", "k", b"v\r\n", 7) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n7\r\n"


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    settings = RedisSettings("127.0.0.1", port, db=2)
    deadline = time.monotonic() + 10
    while True:
        try:
            redis_cache.connect(LocalHost(), settings).close()
            break
        except PurgeFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    yield settings
    proc.terminate()
    proc.wait()


def test_purge_removes_every_kind_of_descriptor_and_only_those(redis_server):
    host, s = LocalHost(), redis_server
    gone, kept = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    c = redis_cache.connect(host, s)
    for d in (gone, kept):
        c.call("HSET", f"blobs::{d}", "digest", d, "size", 1)
        c.call("HSET", f"repository::g/app::blobs::{d}", "mediatype", "x")
        c.call("SADD", "repository::g/app::blobs", d)
        c.call("SADD", "repository::other::blobs", d)
    c.close()
    outcome = redis_cache.purge_descriptors(host, s, [gone])
    assert (outcome.keys_deleted, outcome.set_members_removed, outcome.verified) == (2, 2, True)
    assert redis_cache.cached_digests(host, s) == {kept}


def test_wrong_password_is_a_failed_purge(redis_server):
    c = redis_cache.connect(LocalHost(), redis_server)
    with pytest.raises(ReplyError):
        c.call("AUTH", "nobody-set-one")
    c.close()
    bad = RedisSettings(redis_server.address, redis_server.port, password="secret-x")
    with pytest.raises(PurgeFailed) as caught:
        redis_cache.purge_descriptors(LocalHost(), bad, ["sha256:" + "c" * 64])
    assert "secret-x" not in str(caught.value)


def test_tls_redis_is_verified_unless_insecure(tmp_path):
    """GitLab's redis.tls: verified against the system's CAs by default; `insecure: true` skips that."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    import datetime
    import socket

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(tmp_path / "c.pem"), "--tls-key-file", str(tmp_path / "k.pem"),
                             "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL)
    try:
        insecure = RedisSettings("127.0.0.1", port, tls=True, tls_insecure=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert redis_cache.cached_digests(LocalHost(), insecure) == set()
                break
            except PurgeFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        with pytest.raises(PurgeFailed, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            redis_cache.cached_digests(LocalHost(), RedisSettings("127.0.0.1", port, tls=True))
    finally:
        proc.terminate()
        proc.wait()
