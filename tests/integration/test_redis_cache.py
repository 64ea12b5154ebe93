"""Stale Redis blob descriptors (issue #10 item 6): a real redis-server inside the test host, real GC, real pushes."""
from __future__ import annotations

from tests.harness import images, services
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config

REDIS_PASSWORD, DB = "redis-pw-91c2", 1
SIZE = 16 * 1024


def redis_host(host_factory, name):
    h = host_factory(name, blobdescriptor="redis", start_registry=False,
                     extra_config=services.redis_config(REDIS_PASSWORD, db=DB))
    services.start_redis(h, password=REDIS_PASSWORD)
    h.sh("systemctl start docker-registry")
    h.wait_registry()
    return h


def image(tmp_path, name, tag, layer_seeds):
    return images.build_layout(tmp_path / f"oci-{name}", tag, seed=0, layer_size=SIZE, layer_seeds=layer_seeds)


def push_and_untag(h, tmp_path, repo, name, shared_seed):
    """Push an image whose first layer is `shared_seed`'s, delete its tag; gives its blobs (GC deletes them)."""
    img = images.push(h, image(tmp_path, name, "old", [shared_seed, f"{name}-own"]), "old", repo)
    images.delete_tag(h, repo, "old")
    return img


def cached(h, digest) -> bool:
    return services.redis_cli(h, "EXISTS", f"blobs::{digest}", password=REDIS_PASSWORD, db=DB) == ["1"]


def test_no_descriptor_of_a_deleted_blob_survives_the_run(host_factory, tmp_path):
    h = redis_host(host_factory, "redis")

    # the defect, with the registry's own procedure (stop, GC, start): Redis still
    # describes the deleted layer, so a push sharing it skips the upload and cannot be pulled
    old = push_and_untag(h, tmp_path, "team/old", "a", "shared-a")
    assert all(cached(h, d) for d in old.blob_digests)
    h.sh("systemctl stop docker-registry && docker-registry garbage-collect /etc/docker/registry/config.yml "
         ">/dev/null 2>&1 && systemctl start docker-registry")
    assert not old.blob_digests & images.blob_digests_on_disk(h)
    broken = images.push(h, image(tmp_path, "b", "new", ["shared-a", "b-own"]), "new", "team/old")
    assert not images.pulls(h, "team/old", broken.tag), "the stale-descriptor defect did not reproduce"
    images.delete_tag(h, "team/old", broken.tag)

    # gcops: the same kind of garbage, collected by a run
    doomed = push_and_untag(h, tmp_path, "team/app", "c", "shared-c")
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=h.known_hosts)
    proc = run_gcops("--config", str(config), "run", "--json")
    inst = json_doc(proc)["instances"][0]
    assert proc.returncode == 0 and inst["status"] == "ok", proc.stderr
    assert not doomed.blob_digests & images.blob_digests_on_disk(h)
    assert REDIS_PASSWORD not in proc.stdout + proc.stderr
    # no descriptor of a deleted blob is left: global hashes, repository hashes, repository sets
    keys = services.redis_cli(h, "--scan", password=REDIS_PASSWORD, db=DB)
    gone = (old.blob_digests | doomed.blob_digests) - images.blob_digests_on_disk(h)
    assert gone and not [k for k in keys if any(k.endswith(d) for d in gone)]
    members = set(services.redis_cli(h, "SMEMBERS", "repository::team/app::blobs", password=REDIS_PASSWORD, db=DB))
    assert not members & gone

    # the user's next push sharing a deleted layer uploads it again, and pulls
    fresh = images.push(h, image(tmp_path, "d", "new", ["shared-c", "d-own"]), "new", "team/app")
    assert images.pulls(h, "team/app", fresh.tag), h.last_pull_error
    # and the layer the hand-run GC left described is repaired too
    again = images.push(h, image(tmp_path, "e", "again", ["shared-a", "e-own"]), "again", "team/old")
    assert images.pulls(h, "team/old", again.tag), h.last_pull_error


def test_unreachable_redis_fails_the_run(host_factory, tmp_path):
    """A purge that cannot happen is a failed run, never a silent ok; the registry is restored all the same."""
    h = host_factory("redisbad", blobdescriptor="redis", extra_config=services.redis_config(None, port=6390))
    repo_img = images.push(h, image(tmp_path, "x", "old", ["x-shared", "x-own"]), "old", "team/app")
    images.delete_tag(h, "team/app", "old")
    before = h.config_file.read_bytes()
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=h.known_hosts)
    proc = run_gcops("--config", str(config), "run", "--json")
    inst = json_doc(proc)["instances"][0]
    assert proc.returncode == 1 and inst["status"] == "failed", proc.stderr
    assert "Redis" in inst["error"] and "6390" in inst["error"]
    assert h.config_file.read_bytes() == before
    assert not repo_img.blob_digests & images.blob_digests_on_disk(h)   # GC itself ran
