"""The parallel bucket listing against a real S3 server process (moto), through a throttling proxy."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from gcops.storage.s3_listing import list_sequential, list_storage
from tests.harness.s3proxy import DelayProxy
from tests.harness.s3server import start_s3_server


@pytest.fixture(scope="module")
def awkward_bucket(tmp_path_factory):
    """A registry-shaped bucket with keys at every awkward place of the key space."""
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    client = server.client()
    client.create_bucket(Bucket="awkward")
    root = "reg/docker/registry/v2/"
    keys = []
    for i in range(300):   # every two-hex blob dir, most of them once
        digest = hashlib.sha256(f"{i}".encode()).hexdigest()
        if i < 256:
            digest = f"{i:02x}" + digest[2:]
        keys.append(f"{root}blobs/sha256/{digest[:2]}/{digest}/data")
    for n, repo in enumerate(["a", "a.b", "a-b", "app", "group/sub/app", "z" * 40, "team/app"]):
        for j in range(12):
            keys.append(f"{root}repositories/{repo}/_layers/sha256/{n:02x}{j:062x}/link")
    keys += [  # objects directly at levels, dirs that are not two-hex, near the group edges
        "reg/loose", "reg/docker/registry/lockfiles/filesystem-in-use", f"{root}blobs/sha256/zz/x/data",
        f"{root}blobs/sha256/0", f"{root}blobs/sha256/0f", f"{root}blobs/sha512/ab/cd/data", f"{root}blobs/direct",
        f"{root}repositories/direct", f"{root}repositories/a/", f"{root}other/x", "regx/outside", "reg0",
        f"{root}blobs/sha256/a0.x", f"{root}repositories/a/../b",
    ]

    def put(item):
        n, key = item
        client.put_object(Bucket="awkward", Key=key, Body=b"x" * (n % 97))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, enumerate(keys)))
    yield server, keys
    server.stop()


@pytest.mark.parametrize("concurrency", [1, 3, 40])
def test_parallel_listing_counts_every_object_once(awkward_bucket, concurrency):
    server, keys = awkward_bucket
    expected_bytes = sum(n % 97 for n, k in enumerate(keys) if k.startswith("reg/"))
    expected_blobs = sum(1 for k in keys if k.startswith("reg/docker/registry/v2/blobs/sha256/")
                         and len(k.split("/")) == 9 and k.split("/")[8] == "data"
                         and k.split("/")[7][:2] == k.split("/")[6])
    got = list_storage(server.client(), "awkward", "reg/", concurrency=concurrency)
    assert (got.total_bytes, got.objects, got.blobs) == (expected_bytes, sum(k.startswith("reg/") for k in keys),
                                                         expected_blobs)
    picked = {k.split("/")[7]: n % 97 for n, k in enumerate(keys)
              if k.startswith("reg/docker/registry/v2/blobs/sha256/") and n % 7 == 0 and n < 300}
    chosen = list_storage(server.client(), "awkward", "reg/", concurrency=concurrency,
                          select=frozenset(picked) | {"f" * 64})           # one digest with no object
    assert (chosen.selected, chosen.selected_bytes) == (len(picked), sum(picked.values()))
    seq = list_sequential(server.client(), "awkward", "reg/")
    assert (seq.total_bytes, seq.objects, seq.blobs, seq.blob_bytes) == (
        got.total_bytes, got.objects, got.blobs, got.blob_bytes)


def test_listing_survives_slowdown_throttling(awkward_bucket):
    """Every 3rd list request answered 503 SlowDown: retried with backoff, totals unchanged."""
    server, _ = awkward_bucket
    direct = list_storage(server.client(), "awkward", "reg/", concurrency=4)
    proxy = DelayProxy(server.port, delay=0.0, slowdown_every=3)
    try:
        throttled = list_storage(server.client(endpoint=proxy.url), "awkward", "reg/", concurrency=4)
    finally:
        proxy.close()
    assert proxy.slowdowns >= 3
    assert (throttled.total_bytes, throttled.objects, throttled.blobs) == (direct.total_bytes, direct.objects,
                                                                           direct.blobs)
