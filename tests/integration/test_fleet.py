"""Fleets (parallel, failures isolated) and HA instances (several nodes, one storage) (issue 5)."""
from __future__ import annotations

import time

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, slow_registry, spawn_until_gc, write_probe


def combined_known_hosts(tmp_path, hosts):
    path = tmp_path / "known_hosts"
    path.write_text("".join(h.known_hosts.read_text() for h in hosts))
    return path


def test_fleet_in_parallel_with_one_unreachable(host_factory, tmp_path):
    hosts = [host_factory(f"fleet{i}") for i in range(4)]
    garbage = {h.name: make_garbage(h, tmp_path / h.name, kept=1, deleted=2, seed=i) for i, h in enumerate(hosts[:3])}
    hosts[3].stop_sshd()                         # unreachable
    before = {h.name: (h.config_file.read_bytes(), images.storage_du(h)) for h in hosts}
    slow = {"registry": str(slow_registry(tmp_path, 2))}
    config = write_config(tmp_path / "gcops.toml", [instance_block(h.name, h, vars=slow) for h in hosts],
                          state_dir=tmp_path / "state", client_key=hosts[0].client_key,
                          known_hosts=combined_known_hosts(tmp_path, hosts),
                          gcops_extra="parallel = 4", ssh_extra='connect_timeout = "3s"')
    t0 = time.monotonic()
    proc = run_gcops("--config", str(config), "run", "--json")
    wall = time.monotonic() - t0
    doc = json_doc(proc)
    assert proc.returncode == 1, proc.stderr
    by_name = {i["name"]: i for i in doc["instances"]}
    # the unreachable one is refused by the shared-storage screen (it cannot look), naming the cause
    assert [by_name[h.name]["status"] for h in hosts] == ["ok", "ok", "ok", "skipped"]
    assert "shared-storage screen failed" in by_name["fleet3"]["error"] and hosts[3].address in by_name["fleet3"]["error"]
    assert doc["totals"] == {"reclaimed_bytes": sum(by_name[h.name]["reclaimed_bytes"] for h in hosts[:3]),
                             "instances_ok": 3, "instances_failed": 1}
    for h in hosts[:3]:
        drop = before[h.name][1] - images.storage_du(h)
        assert by_name[h.name]["reclaimed_bytes"] == drop > 0
        assert h.config_file.read_bytes() == before[h.name][0] and write_probe(h) == 400
        assert all_pull(h, garbage[h.name].kept)
    assert hosts[3].config_file.read_bytes() == before["fleet3"][0]
    assert images.storage_du(hosts[3]) == before["fleet3"][1]
    durations = sum(by_name[h.name]["duration_seconds"] for h in hosts[:3])
    assert wall < 0.6 * durations + 3, (wall, durations)     # + the screen's one connect_timeout to fleet3


def test_parallel_one_is_sequential(host_factory, tmp_path):
    hosts = [host_factory(f"seq{i}") for i in range(2)]
    for i, h in enumerate(hosts):
        make_garbage(h, tmp_path / h.name, kept=1, deleted=1, seed=i)
    config = write_config(tmp_path / "gcops.toml", [instance_block(h.name, h) for h in hosts],
                          state_dir=tmp_path / "state", client_key=hosts[0].client_key,
                          known_hosts=combined_known_hosts(tmp_path, hosts))
    proc = run_gcops("--config", str(config), "run", "--json", "--parallel", "1", "seq1")
    doc = json_doc(proc)
    assert proc.returncode == 0 and [i["name"] for i in doc["instances"]] == ["seq1"]


def ha_pair(host_factory, tmp_path):
    shared = tmp_path / "shared-storage"
    shared.mkdir()
    a = host_factory("nodea", storage_dir=shared)
    b = host_factory("nodeb", storage_dir=shared)
    return a, b


def test_ha_both_nodes_read_only_during_gc_and_restored(host_factory, tmp_path):
    a, b = ha_pair(host_factory, tmp_path)
    garbage = make_garbage(a, tmp_path, kept=2, deleted=2)
    originals = (a.config_file.read_bytes(), b.config_file.read_bytes())
    du, blobs = images.storage_du(a), images.blob_digests_on_disk(a)
    config = write_config(tmp_path / "gcops.toml",
                          [instance_block("ha", [a, b], vars={"registry": str(slow_registry(tmp_path, 2))})],
                          state_dir=tmp_path / "state", client_key=a.client_key,
                          known_hosts=combined_known_hosts(tmp_path, [a, b]))
    proc = spawn_until_gc(a, config, "run", "--json")
    during = [(write_probe(a), write_probe(b)) for _ in range(5)]
    code, doc, err = finish(proc, 120)
    assert code == 0, err
    assert set(during) == {(405, 405)}
    inst = doc["instances"][0]
    assert inst["hosts"] == [a.address, b.address] and inst["status"] == "ok"
    assert inst["blobs_deleted"] == len(blobs - images.blob_digests_on_disk(a)) > 0
    assert inst["reclaimed_bytes"] == du - images.storage_du(a)
    assert (a.config_file.read_bytes(), b.config_file.read_bytes()) == originals
    assert write_probe(a) == 400 and write_probe(b) == 400
    assert all_pull(a, garbage.kept) and all_pull(b, garbage.kept)


def test_ha_node_that_stays_writable_means_no_gc_anywhere(host_factory, tmp_path):
    a, b = ha_pair(host_factory, tmp_path)
    make_garbage(a, tmp_path, kept=1, deleted=2)
    real = b.dir / "bin" / "systemctl"
    real.rename(b.dir / "bin" / "systemctl.real")
    # TEST FIXTURE: node b's service manager "restarts" without doing anything (the registry keeps its
    # writable config running), like a node whose unit name differs from the playbook's.
    real.write_text('#!/bin/sh\n[ "$1" = restart ] && exit 0\nexec /usr/local/sbin/systemctl.real "$@"\n')
    real.chmod(0o755)
    originals = (a.config_file.read_bytes(), b.config_file.read_bytes())
    blobs = images.blob_digests_on_disk(a)
    config = write_config(tmp_path / "gcops.toml", [instance_block("ha", [a, b])], state_dir=tmp_path / "state",
                          client_key=a.client_key, known_hosts=combined_known_hosts(tmp_path, [a, b]))
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "failed" and b.address in inst["error"]
    assert images.blob_digests_on_disk(a) == blobs           # GC never ran
    assert (a.config_file.read_bytes(), b.config_file.read_bytes()) == originals
    assert write_probe(a) == 400 and write_probe(b) == 400
