"""Two instances declared separately whose registries share one storage (issue #10 item 14)."""
from __future__ import annotations

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import all_pull, make_garbage, write_probe


def test_two_instances_on_one_storage_are_refused_before_anything_changes(host_factory, tmp_path):
    shared = tmp_path / "shared-storage"
    shared.mkdir()
    a, b = host_factory("sharea", storage_dir=shared), host_factory("shareb", storage_dir=shared)
    garbage = make_garbage(a, tmp_path, kept=1, deleted=1)
    originals = (a.config_file.read_bytes(), b.config_file.read_bytes())
    blobs = images.blob_digests_on_disk(a)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(a.known_hosts.read_text() + b.known_hosts.read_text())
    common = dict(state_dir=tmp_path / "state", client_key=a.client_key, known_hosts=known_hosts)
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg-a", a), instance_block("reg-b", b)],
                          **common)

    proc = run_gcops("--config", str(config), "run", "--json")

    assert proc.returncode == 1, proc.stderr
    by_name = {i["name"]: i for i in json_doc(proc)["instances"]}
    for inst in by_name.values():
        assert inst["status"] == "skipped", inst
        assert "'reg-a' and 'reg-b'" in inst["error"]
        assert f'hosts = ["{a.address}", "{b.address}"]' in inst["error"]
        assert inst["window_seconds"] is None and inst["reclaimed_bytes"] is None
    assert images.blob_digests_on_disk(a) == blobs                       # no GC
    assert (a.config_file.read_bytes(), b.config_file.read_bytes()) == originals
    assert write_probe(a) == 400 and write_probe(b) == 400               # both writable all along
    checked = run_gcops("--config", str(config), "check", "--json")           # check says so too
    assert checked.returncode == 1, checked.stderr
    for inst in json_doc(checked)["instances"]:
        shared_check = next(c for c in inst["checks"] if c["name"] == "shared_storage")
        assert not inst["ok"] and not shared_check["ok"] and "'reg-a' and 'reg-b'" in shared_check["detail"]
    dry = run_gcops("--config", str(config), "run", "--dry-run", "--json")     # and --dry-run, changing nothing
    assert dry.returncode == 1, dry.stderr
    assert all("'reg-a' and 'reg-b'" in i["refused"] for i in json_doc(dry)["instances"])
    # the user's next actions: pushes keep working on both, then the two declared as one instance
    layout = images.build_layout(tmp_path / "after", "after", seed=99, layer_size=4096)
    images.push(b, layout, "after", "team/other")
    assert images.pulls(a, "team/other", "after") and all_pull(b, garbage.kept)
    config = write_config(tmp_path / "gcops-ha.toml", [instance_block("reg", [a, b])], **common)
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["blobs_deleted"] > 0
    assert all_pull(a, garbage.kept) and images.pulls(b, "team/other", "after")


def test_a_storage_last_collected_by_another_configured_instance_is_refused(host_factory, tmp_path):
    shared = tmp_path / "shared-storage"
    shared.mkdir()
    a, b = host_factory("ownera", storage_dir=shared), host_factory("ownerb", storage_dir=shared)
    make_garbage(a, tmp_path, kept=1, deleted=1)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(a.known_hosts.read_text() + b.known_hosts.read_text())
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg-a", a), instance_block("reg-b", b)],
                          state_dir=tmp_path / "state", client_key=a.client_key, known_hosts=known_hosts)
    first = run_gcops("--config", str(config), "run", "--json", "reg-a")      # a separate timer per instance
    assert first.returncode == 0, first.stderr
    original = b.config_file.read_bytes()

    proc = run_gcops("--config", str(config), "run", "--json", "reg-b")

    assert proc.returncode == 1, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "skipped" and "last collected as instance 'reg-a'" in inst["error"]
    assert b.config_file.read_bytes() == original and write_probe(b) == 400


def test_a_storage_the_screen_cannot_identify_refuses_that_instance_only(host_factory, tmp_path):
    """The screen fails on one instance (its storage's id entry is not gcops'): that one is refused with the
    cause named and left untouched, the other is collected; then, the entry removed, the next run collects it."""
    a, b = host_factory("screena"), host_factory("screenb")
    garbage = {h.name: make_garbage(h, tmp_path / h.name, kept=1, deleted=1, seed=i) for i, h in enumerate((a, b))}
    (a.storage_dir / "gcops-storage-id").write_text("someone else's file\n")
    original, blobs = a.config_file.read_bytes(), images.blob_digests_on_disk(a)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(a.known_hosts.read_text() + b.known_hosts.read_text())
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg-a", a), instance_block("reg-b", b)],
                          state_dir=tmp_path / "state", client_key=a.client_key, known_hosts=known_hosts)

    proc = run_gcops("--config", str(config), "run", "--json")

    assert proc.returncode == 1, proc.stderr
    by_name = {i["name"]: i for i in json_doc(proc)["instances"]}
    assert by_name["reg-b"]["status"] == "ok" and by_name["reg-b"]["blobs_deleted"] > 0
    refused = by_name["reg-a"]
    assert refused["status"] == "skipped", refused
    assert refused["error"].startswith(f"refused: shared-storage screen failed on {a.address}: ")
    assert "gcops-storage-id is not a symlink" in refused["error"]
    assert images.blob_digests_on_disk(a) == blobs and a.config_file.read_bytes() == original    # untouched
    assert write_probe(a) == 400 and all_pull(a, garbage[a.name].kept)
    # the user's next action: the foreign entry moved away, the instance is screened and collected
    (a.storage_dir / "gcops-storage-id").unlink()
    proc = run_gcops("--config", str(config), "run", "--json", "reg-a")
    assert proc.returncode == 0, proc.stderr
    assert json_doc(proc)["instances"][0]["blobs_deleted"] > 0 and all_pull(a, garbage[a.name].kept)
