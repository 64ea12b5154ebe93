"""--mode stop and the GitLab Omnibus playbook on an Omnibus-shaped host (issue 4)."""
from __future__ import annotations

import time

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, slow_registry, spawn_until_gc, write_probe


def config_for(tmp_path, host, *, playbook="distribution", vars=None, extra=""):
    return write_config(tmp_path / "gcops.toml", [instance_block("reg", host, playbook=playbook, vars=vars,
                                                                  extra=extra)],
                        state_dir=tmp_path / "state", client_key=host.client_key, known_hosts=host.known_hosts)


def gc_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] not in "ZX"
    except OSError:
        return False


def test_stop_mode_registry_down_during_gc_and_back_after(host_factory, tmp_path):
    h = host_factory("stopmode")
    garbage = make_garbage(h, tmp_path)
    original, du, blobs = h.config_file.read_bytes(), images.storage_du(h), images.blob_digests_on_disk(h)
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 2))})
    proc = spawn_until_gc(h, config, "run", "--json", "--mode", "stop")
    pid = int((h.config_file.parent / ".gcops" / "gc.pid").read_text())
    seen = []
    while proc.poll() is None and gc_alive(pid):
        seen.append(h.registry_up())
        time.sleep(0.05)
    code, doc, err = finish(proc, 60)
    assert code == 0, err
    assert seen and not any(seen)           # down for the whole GC
    inst = doc["instances"][0]
    assert inst["mode"] == "stop" and inst["status"] == "ok"
    real_drop = du - images.storage_du(h)
    assert abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop
    assert inst["blobs_deleted"] == len(blobs - images.blob_digests_on_disk(h))
    assert h.registry_up() and write_probe(h) == 400
    assert h.config_file.read_bytes() == original
    assert all_pull(h, garbage.kept)


def test_stop_mode_always_starts_the_registry_even_when_gc_fails(host_factory, tmp_path):
    h = host_factory("stopfail")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'failed to garbage collect: injected' >&2\nexit 1\n")  # TEST FIXTURE
    broken.chmod(0o755)
    config = config_for(tmp_path, h, vars={"registry": str(broken)}, extra='mode = "stop"')
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1
    assert json_doc(proc)["instances"][0]["status"] == "failed"
    assert h.registry_up() and write_probe(h) == 400


def test_omnibus_playbook_unmodified_on_an_omnibus_host(host_factory, tmp_path):
    h = host_factory("gitlab", "omnibus")
    assert h.config_path == "/var/opt/gitlab/registry/config.yml"
    garbage = make_garbage(h, tmp_path, kept=2, deleted=3)
    original, du, blobs = h.config_file.read_bytes(), images.storage_du(h), images.blob_digests_on_disk(h)
    proc = run_gcops("--config", str(config_for(tmp_path, h, playbook="omnibus")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["playbook"] == "omnibus"
    real_drop = du - images.storage_du(h)
    assert real_drop > 0 and abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop
    assert inst["blobs_deleted"] == len(blobs - images.blob_digests_on_disk(h))
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
    assert "gitlab-ctl restart registry" in run_gcops("--config", str(config_for(tmp_path, h, playbook="omnibus")),
                                                      "run", "--dry-run").stdout


def test_lost_read_only_during_gc_fails_loudly(host_factory, tmp_path):
    """What `gitlab-ctl reconfigure` does mid-GC: config re-rendered without read-only, registry restarted."""
    h = host_factory("reconf", "omnibus")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, playbook="omnibus", vars={"registry": str(slow_registry(tmp_path, 3))})
    proc = spawn_until_gc(h, config, "run", "--json")
    h.config_file.write_bytes(original)              # "reconfigure" renders the config from gitlab.rb ...
    h.sh("gitlab-ctl restart registry")              # ... and restarts the registry: writes accepted again
    code, doc, err = finish(proc, 60)
    assert code == 1, err
    inst = doc["instances"][0]
    assert inst["status"] == "failed" and "read-only was LOST" in inst["error"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
