"""plan, and the safe --delete-untagged, on real registries with a multi-arch index (issue 4)."""
from __future__ import annotations

import threading
import time


from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import LAYER, all_pull, make_garbage, write_probe


def config_for(tmp_path, host):
    return write_config(tmp_path / "gcops.toml", [instance_block("reg", host)], state_dir=tmp_path / "state",
                        client_key=host.client_key, known_hosts=host.known_hosts)


def multiarch_with_untagged(host, tmp_path):
    """A tagged OCI index (2 platforms, children reachable only through it), a Docker manifest list,
    and an untagged manifest (its tag moved on) whose layers nothing else uses."""
    index = images.push(host, images.build_multiarch_layout(tmp_path / "multi", "latest", seed=11,
                                                            layer_size=LAYER), "latest", "team/multi",
                        all_platforms=True)
    dlist = images.push(host, images.build_multiarch_layout(tmp_path / "list", "v1", seed=12, layer_size=LAYER,
                                                            arches=("amd64", "arm64", "s390x")),
                        "v1", "team/list", all_platforms=True, format="v2s2")
    old = images.push(host, images.build_layout(tmp_path / "old", "v1", seed=13, layer_size=LAYER), "v1",
                      "team/app")
    new = images.push(host, images.build_layout(tmp_path / "new", "v1", seed=14, layer_size=LAYER), "v1",
                      "team/app")
    assert old.manifest_digest != new.manifest_digest and len(index.child_digests) == 2
    return index, dlist, old, new


def child_manifests_answer(host, img) -> bool:
    return all(images.get_manifest(host, img.repo, d)[0] == 200 for d in img.child_digests)


def test_upstream_dash_m_breaks_tagged_multiarch_images(host_factory, tmp_path):
    """Why gcops never passes -m to 2.8: the registry's own -m deletes the children of a tagged index."""
    h = host_factory("upstream")
    index, dlist, old, new = multiarch_with_untagged(h, tmp_path)
    h.sh("systemctl stop docker-registry && docker-registry garbage-collect -m /etc/docker/registry/config.yml"
         " >/dev/null 2>&1; systemctl start docker-registry")
    assert not child_manifests_answer(h, index)          # GET of a child manifest: 404
    assert not images.pulls(h, "team/multi", "latest", all_platforms=True)


def test_run_delete_untagged_frees_untagged_and_keeps_every_platform(host_factory, tmp_path):
    h = host_factory("untag")
    index, dlist, old, new = multiarch_with_untagged(h, tmp_path)
    original, du_before = h.config_file.read_bytes(), images.storage_du(h)
    old_only = old.all_digests - new.all_digests
    plan = run_gcops("--config", str(config_for(tmp_path, h)), "plan", "--delete-untagged", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json_doc(plan)["instances"][0]
    assert planned["eligible_manifests"] == 1 and planned["eligible_blobs"] == len(old_only)
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--delete-untagged", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    on_disk = images.blob_digests_on_disk(h)
    assert not (old_only & on_disk)                      # the untagged manifest and its layers are gone
    assert inst["manifests_deleted"] == 1 and inst["blobs_deleted"] == len(old_only)
    assert index.all_digests <= on_disk and dlist.all_digests <= on_disk and new.all_digests <= on_disk
    assert child_manifests_answer(h, index) and child_manifests_answer(h, dlist)
    assert images.pulls(h, "team/multi", "latest", all_platforms=True), h.last_pull_error
    assert images.pulls(h, "team/list", "v1", all_platforms=True), h.last_pull_error
    assert images.pulls(h, "team/app", "v1")
    real_drop = du_before - images.storage_du(h)
    assert abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop
    assert abs(planned["reclaimable_bytes"] - inst["reclaimed_bytes"]) <= 0.05 * inst["reclaimed_bytes"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400


def test_without_delete_untagged_untagged_manifests_stay(host_factory, tmp_path):
    h = host_factory("keep")
    index, dlist, old, new = multiarch_with_untagged(h, tmp_path)
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert old.all_digests <= images.blob_digests_on_disk(h)
    assert images.get_manifest(h, "team/app", old.manifest_digest)[0] == 200


def test_plan_changes_nothing_and_predicts_the_run(host_factory, tmp_path):
    h = host_factory("plan")
    garbage = make_garbage(h, tmp_path, kept=2, deleted=3)
    original, du, blobs = h.config_file.read_bytes(), images.storage_du(h), images.blob_digests_on_disk(h)
    answers, stop = [], threading.Event()

    def probe():
        while not stop.is_set():
            answers.append(write_probe(h))
            time.sleep(0.01)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    plan = run_gcops("--config", str(config_for(tmp_path, h)), "plan", "--json")
    stop.set()
    t.join()
    assert plan.returncode == 0, plan.stderr
    assert answers and set(answers) == {400}          # writes accepted throughout
    assert h.config_file.read_bytes() == original
    assert images.storage_du(h) == du and images.blob_digests_on_disk(h) == blobs
    planned = json_doc(plan)["instances"][0]
    assert planned["storage_bytes"] == du and planned["eligible_blobs"] > 0
    table = run_gcops("--config", str(config_for(tmp_path, h)), "plan")
    assert table.returncode == 0 and "reclaimable" in table.stdout
    run = json_doc(run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json"))["instances"][0]
    assert run["blobs_deleted"] == planned["eligible_blobs"]
    assert abs(planned["reclaimable_bytes"] - run["reclaimed_bytes"]) <= 0.05 * run["reclaimed_bytes"]
    assert all_pull(h, garbage.kept)
