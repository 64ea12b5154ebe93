"""The window's promises on the paths that used to break them: kills, symlinks, lost records, shared state."""
from __future__ import annotations

import json
import os
import signal
import time

from tests.harness import images, netns
from tests.harness.gcops_cli import json_doc, run_gcops, spawn_gcops
from tests.integration.conftest import (all_pull, finish, make_garbage, slow_registry, spawn_until_gc, wait_for,
                                        write_probe)
from tests.integration.test_faults import config_for


def state_dir_of(h):
    return h.config_file.parent / ".gcops"


def test_sigkill_then_run_again_at_once(host_factory, tmp_path):
    """gcops killed mid-window: the next run (same machine) takes over the dead run's lock, restores, collects."""
    h = host_factory("kill-again")
    garbage = make_garbage(h, tmp_path)
    original = h.config_file.read_bytes()
    slow = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 300))}, max_window="30m")
    proc = spawn_until_gc(h, slow, "run")
    assert write_probe(h) == 405
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    proc = run_gcops("--config", str(config_for(tmp_path, h, state="state2")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 60          # not the 30 minutes of the dead run's watchdog deadline
    doc = json_doc(proc)["instances"][0]
    assert doc["status"] == "ok" and doc["blobs_deleted"] > 0
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert not (state_dir_of(h) / "lock").exists() and not (state_dir_of(h) / "marker").exists()
    assert all_pull(h, garbage.kept)
    assert not any("gcops-gc" in " ".join(netns.cmdline(p)) for p in netns.pids_in(net_ino=h._net_ino))


def test_sigkill_gc_end_restores_without_waiting_for_the_watchdog(host_factory, tmp_path):
    """gcops killed during GC: when the GC ends, gc.sh sees nobody listens and restores at once."""
    h = host_factory("kill-gc-end")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 3))}, max_window="30m")
    proc = spawn_until_gc(h, config, "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: write_probe(h) == 400 and h.config_file.read_bytes() == original, 30, "gc.sh to restore")
    wait_for(lambda: not (state_dir_of(h) / "lock").exists(), 10, "the lock to be released")
    proc = run_gcops("--config", str(config_for(tmp_path, h, state="state2")), "run", "--json")
    assert proc.returncode == 0, proc.stderr


def test_symlinked_config_stays_a_symlink(host_factory, tmp_path):
    h = host_factory("symlink")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    # config management keeps the file elsewhere and links it (here: inside the same config dir tree)
    h.sh("mkdir -p /etc/docker/registry/managed && mv /etc/docker/registry/config.yml /etc/docker/registry/managed/"
         "registry.yml && ln -s managed/registry.yml /etc/docker/registry/config.yml")
    target = h.config_file.parent / "managed" / "registry.yml"
    original, stat_before = target.read_bytes(), target.stat()
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert h.config_file.is_symlink() and os.readlink(h.config_file) == "managed/registry.yml"
    assert target.read_bytes() == original
    assert (target.stat().st_mode, target.stat().st_uid) == (stat_before.st_mode, stat_before.st_uid)
    assert json_doc(proc)["instances"][0]["reclaimed_bytes"] > 0
    assert write_probe(h) == 400 and all_pull(h, garbage.kept)


def test_marker_without_restore_script_is_exit_3_with_manual_steps(host_factory, tmp_path):
    h = host_factory("deadend")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    state = state_dir_of(h)
    state.mkdir(mode=0o700)
    (state / "marker").write_text("run_id=20260101T000000Z-dead\nmode=readonly\n")
    config = config_for(tmp_path, h)
    proc = run_gcops("--config", str(config), "recover", "--json")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    node = json_doc(proc)["instances"][0]["nodes"][0]
    assert not node["ok"] and "by hand" in node["detail"] and "marker" in node["detail"]
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1 and "gcops recover" in json_doc(proc)["instances"][0]["error"]
    assert write_probe(h) == 400


def test_runs_sharing_a_state_dir_keep_the_winners_journal(host_factory, tmp_path):
    h = host_factory("journal-race")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 6))})
    winner = spawn_until_gc(h, config, "run", "--json")
    journal = tmp_path / "state" / "journal" / "reg"
    intents = sorted(journal.glob("*.json"))
    assert len(intents) == 1
    loser = run_gcops("--config", str(config), "run", "--json")
    assert loser.returncode == 75, loser.stderr
    assert sorted(journal.glob("*.json")) == intents          # the winner's record is still there
    assert json.loads(intents[0].read_text())["run_id"] != json_doc(loser)["run_id"]
    code, doc, err = finish(winner, 120)
    assert code == 0, err
    assert not list(journal.glob("*.json"))


def test_a_lock_just_taken_is_held_not_recovered_by_a_second_run(host_factory, tmp_path):
    """Two runs sharing one state dir start together on a host gcops never ran on. The first has just taken
    the host's lock and not yet written its watchdog deadline (held 4 s there by a slow sha256sum, once) when
    the second looks: the second must wait (75), not take the lock as abandoned and undo the first's record.
    While writes are refused, the local journal holds the intent of the run that holds the lock."""
    h = host_factory("lock-fresh")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    (h.dir / "bin" / "slow-once").write_text("")
    stub = h.dir / "bin" / "sha256sum"      # /usr/local/sbin inside the host, first on its PATH
    stub.write_text("#!/bin/sh\n# TEST FIXTURE (gcops integration tests): sha256sum, 4 s late once inside enter.sh\n"
                    "if tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q gcops-enter && rm /usr/local/sbin/slow-once"
                    " 2>/dev/null; then sleep 4; fi\nexec /usr/bin/sha256sum \"$@\"\n")
    stub.chmod(0o755)
    config = config_for(tmp_path, h)
    lock, journal = state_dir_of(h) / "lock", tmp_path / "state" / "journal" / "reg"
    first = spawn_gcops("--config", str(config), "run", "--json")
    wait_for(lambda: lock.exists() or first.poll() is not None, 30, "the first run to take the lock")
    second = spawn_gcops("--config", str(config), "run", "--json")
    unrecorded = []
    while first.poll() is None or second.poll() is None:
        if write_probe(h) == 405:
            holder = (lock / "run_id").read_text().strip() if (lock / "run_id").exists() else "?"
            if not any(holder in p.name for p in journal.glob("*.json")):
                unrecorded.append(holder)
        time.sleep(0.02)
    (code1, doc1, err1), (code2, doc2, err2) = finish(first), finish(second)
    assert code2 == 75, err2
    assert "lock" in doc2["instances"][0]["error"]
    assert code1 == 0, err1
    assert doc1["instances"][0]["status"] == "ok" and doc1["instances"][0]["blobs_deleted"] > 0
    assert not unrecorded, unrecorded
    assert not list(journal.glob("*.json")) and not lock.exists()
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    # the user's next action: run again; pushes and pulls work
    stub.unlink()
    assert run_gcops("--config", str(config), "run", "--json").returncode == 0
    assert all_pull(h, garbage.kept)


def test_gc_dying_after_its_sweep_still_reports_the_real_drop(host_factory, tmp_path):
    """The GC deletes, then dies (SIGKILL): the run fails, and reclaimed_bytes is what really went."""
    h = host_factory("gc-dies")
    make_garbage(h, tmp_path, kept=1, deleted=2)
    dying = tmp_path / "dying-registry"
    dying.write_text("#!/bin/sh\n# TEST FIXTURE: the real GC, then a crash\n/usr/bin/docker-registry \"$@\"\n"
                     "kill -9 $$\n")
    dying.chmod(0o755)
    before = images.storage_du(h)
    proc = run_gcops("--config", str(config_for(tmp_path, h, vars={"registry": str(dying)})), "run", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json_doc(proc)["instances"][0]
    assert doc["status"] == "failed" and "GC exited 137" in doc["error"]
    drop = before - images.storage_du(h)
    assert drop > 0 and doc["reclaimed_bytes"] is not None
    assert abs(doc["reclaimed_bytes"] - drop) <= 0.01 * drop
    assert write_probe(h) == 400


def test_dry_run_prints_what_the_run_sends_and_refusals_exit_1(host_factory, tmp_path):
    h = host_factory("dry")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h)
    proc = run_gcops("--config", str(config), "run", "--dry-run", "--json", "--delete-untagged")
    assert proc.returncode == 0, proc.stderr
    doc = json_doc(proc)["instances"][0]
    steps = {s["step"]: s for s in doc["steps"]}
    assert {"preflight", "find_untagged", "enter", "delete_untagged", "gc", "restore"} <= set(steps)
    assert steps["enter"]["command"].startswith("/bin/sh -c ") and "write=yes" in steps["enter"]["command"]
    assert "garbage-collect" in steps["gc"]["command"] and "enabled: true" in doc["diff"]
    text = run_gcops("--config", str(config), "run", "--dry-run")
    assert text.returncode == 0 and "gcops/hostside/sh/enter.sh" in text.stdout
    # already read-only: no write, no restart; the same as the run would do
    h.sh("sed -i 's/^storage:/storage:\\n  maintenance:\\n    readonly:\\n      enabled: true/' "
         "/etc/docker/registry/config.yml")
    ro = json_doc(run_gcops("--config", str(config), "run", "--dry-run", "--json"))["instances"][0]
    assert "write=no" in {s["step"]: s for s in ro["steps"]}["enter"]["command"] and not ro["diff"]
    h.config_file.write_bytes(original)
    # a run that would be refused: exit 1, nothing touched
    h.sh("mkdir -p /var/lib/docker-registry/docker/registry/lockfiles && "
         "touch /var/lib/docker-registry/docker/registry/lockfiles/database-in-use")
    refused = run_gcops("--config", str(config), "run", "--dry-run")
    assert refused.returncode == 1 and "would be refused" in refused.stdout
    assert h.config_file.read_bytes() == original and not state_dir_of(h).exists()
