"""A BusyBox host (find/du/df/stat/awk/... are BusyBox applets, /bin/sh is BusyBox sh): gcops measures
the same figures as on a GNU host (issue #10 item 5)."""
from __future__ import annotations

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import all_pull, make_garbage, write_probe


def test_busybox_host_reports_the_real_drop(host_factory, tmp_path):
    h = host_factory("bbox", busybox=True)
    probe = h.ssh("find --help 2>&1; /bin/sh --help 2>&1; true").stdout.decode()
    assert probe.count("BusyBox") == 2, probe            # the tools gcops meets there really are BusyBox's
    garbage = make_garbage(h, tmp_path, kept=1, deleted=2)
    original = h.config_file.read_bytes()
    config = write_config(tmp_path / "gcops.toml", [instance_block("bbox", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=h.known_hosts)

    plan = run_gcops("--config", str(config), "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json_doc(plan)["instances"][0]
    before = images.storage_du(h)                         # GNU du -sB1, from outside the host
    proc = run_gcops("--config", str(config), "run", "--json")
    drop = before - images.storage_du(h)

    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert drop > 2 * 64 * 1024
    assert abs(inst["reclaimed_bytes"] - drop) <= drop // 100, (inst["reclaimed_bytes"], drop)
    assert abs(inst["storage_bytes_before"] - before) <= before // 100
    assert inst["blobs_before"] - inst["blobs_after"] == inst["blobs_deleted"] > 0
    assert inst["fs_used_bytes_before"] > 0 and inst["fs_used_bytes_after"] > 0
    assert 0 < planned["reclaimable_bytes"] <= drop + drop // 100, (planned, drop)
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)


def test_registry_named_by_a_bare_path_name_runs_like_a_shell_would(host_factory, tmp_path):
    """`registry = "docker-registry"` (no slash): found through the host's PATH as sh finds it, here on a
    BusyBox host through `sudo` (its secure_path) as a non-root user; `check` shows where it was found."""
    from tests.integration.test_faults import config_for
    from tests.integration.test_ssh_config import USER, add_sudo_user

    h = host_factory("bbpath", busybox=True)
    add_sudo_user(h)
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": "docker-registry"}, extra=f'user = "{USER}"\nsudo = true')

    check = run_gcops("--config", str(config), "check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    [found] = [c for c in json_doc(check)["instances"][0]["checks"] if c["name"] == "gc_binary"]
    assert found == {"name": "gc_binary", "ok": True, "detail": "docker-registry (/usr/bin/docker-registry)"}
    proc = run_gcops("--config", str(config), "run", "--json")

    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["blobs_deleted"] > 0 and inst["reclaimed_bytes"] > 0
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
    # a name the host's PATH does not have is refused up front, naming the PATH searched
    missing = run_gcops("--config", str(config_for(tmp_path, h, state="s2", vars={"registry": "no-such-registry"},
                                                   extra=f'user = "{USER}"\nsudo = true')), "run", "--json")
    assert missing.returncode == 1, missing.stderr
    error = json_doc(missing)["instances"][0]["error"]
    assert "no-such-registry not found as an executable file in the host's PATH (" in error and "/usr/bin" in error
