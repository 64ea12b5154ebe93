"""`gcops run --mode concurrent` end to end, and real faults in each of its phases (issue 13).

Phases: the mark (writes accepted; the registry's GC runs in dry-run) and the window (writes
refused; gcops' collector runs the delta and the sweep). Faults: SIGKILL, SIGTERM, a dropped SSH
connection, and max_window overrun (window only: the mark holds nothing). After each, the
registry must be back as it was, nothing lost, and the user's next run must work.
"""
from __future__ import annotations

import signal
import time

import pytest

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, spawn_gcops, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, slow_registry, wait_for, write_probe

ROOT = "/var/lib/docker-registry"


def config_for(tmp_path, host, *, state="state", vars=None, max_window="5m", extra=""):
    return write_config(tmp_path / f"gcops-{state}.toml",
                        [instance_block("reg", host, vars=vars, extra=f'max_window = "{max_window}"\n{extra}')],
                        state_dir=tmp_path / state, client_key=host.client_key, known_hosts=host.known_hosts)


def markers(h) -> list[str]:
    return sorted(p.name for p in h.storage_dir.glob(".gcops-mark-*"))


def workdirs(h) -> list[str]:
    return sorted(p.name for p in (h.config_file.parent / ".gcops").glob("concurrent-*"))


def slow_delta(h, seconds: float) -> None:
    """TEST FIXTURE: a `find` stand-in on the host's PATH (/usr/local/sbin) that takes `seconds` longer
    when the concurrent collector, in the window, stats the watched directories (its `-maxdepth 0 -newer`),
    so the window lasts."""
    stub = h.dir / "bin" / "find"
    stub.write_text("#!/bin/sh\n# TEST FIXTURE (gcops integration tests): a slow find for the concurrent delta\n"
                    f'case " $* " in *" -maxdepth 0 -newer "*) sleep {seconds:g} ;; esac\nexec /usr/bin/find "$@"\n')
    stub.chmod(0o755)


def test_concurrent_run_collects_with_a_short_window(host_factory, tmp_path):
    h = host_factory("crun")
    garbage = make_garbage(h, tmp_path)
    original, before = h.config_file.read_bytes(), images.blob_digests_on_disk(h)
    eligible = {d for d in before if not any(d in img.all_digests for img in garbage.kept)}
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 2))})
    proc = spawn_gcops("--config", str(config), "run", "--mode", "concurrent", "--json")
    accepted_during_mark = wait_for(lambda: (h.config_file.parent / ".gcops" / "concurrent-").parent.exists()
                                    and markers(h) and write_probe(h), 30, "the mark")
    code, doc, err = finish(proc)
    assert code == 0, err
    assert accepted_during_mark == 400                     # pushes accepted while the GC marks (2 s here)
    inst = doc["instances"][0]
    assert inst["mode"] == "concurrent" and inst["status"] == "ok" and inst["read_only_verified"]
    gone = before - images.blob_digests_on_disk(h)
    assert gone == eligible and inst["blobs_deleted"] == len(gone)
    assert inst["reclaimed_bytes"] > 0 and inst["gc_seconds"] >= 2
    assert inst["window_seconds"] < inst["gc_seconds"]     # the mark (and its 2 s) is outside the window
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
    assert not markers(h) and not workdirs(h)
    dry = h.sh("docker-registry garbage-collect --dry-run /etc/docker/registry/config.yml").stdout.decode()
    assert "blob eligible for deletion" not in dry


def test_concurrent_dry_run_plan_and_refused_combination(host_factory, tmp_path):
    h = host_factory("cdry")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original, before = h.config_file.read_bytes(), images.blob_digests_on_disk(h)
    config = config_for(tmp_path, h, extra='mode = "concurrent"')
    dry = run_gcops("--config", str(config), "run", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "concurrent_mark.sh" in dry.stdout and "concurrent_collect.sh" in dry.stdout
    assert "writes accepted" in dry.stdout and "--dry-run" in dry.stdout
    plan = run_gcops("--config", str(config), "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    inst = json_doc(plan)["instances"][0]
    assert inst["mode"] == "concurrent" and any("marker" in line for line in inst["concurrent"])
    refused = run_gcops("--config", str(config), "run", "--delete-untagged")
    assert refused.returncode == 2 and "--delete-untagged cannot be combined with --mode concurrent" in refused.stderr
    assert h.config_file.read_bytes() == original and images.blob_digests_on_disk(h) == before
    assert not markers(h) and not (h.config_file.parent / ".gcops").exists()


def _after_fault(h, tmp_path, garbage, original) -> None:
    """Restored, nothing lost, nothing of ours left once the next run has worked."""
    wait_for(lambda: write_probe(h) == 400 and h.config_file.read_bytes() == original, 60, "the registry restored")
    assert all_pull(h, garbage.kept)
    nxt = run_gcops("--config", str(config_for(tmp_path, h, state="next")), "run", "--mode", "concurrent", "--json")
    assert nxt.returncode == 0, nxt.stderr
    assert all_pull(h, garbage.kept) and h.config_file.read_bytes() == original and write_probe(h) == 400
    assert not workdirs(h)


@pytest.mark.parametrize("fault", ["SIGTERM", "SIGKILL", "drop"])
def test_fault_during_the_mark_changes_nothing(fault, host_factory, tmp_path):
    h = host_factory("cmark")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original, before = h.config_file.read_bytes(), images.blob_digests_on_disk(h)
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 30))})
    proc = spawn_gcops("--config", str(config), "run", "--mode", "concurrent", "--json")
    wait_for(lambda: workdirs(h) and (h.config_file.parent / ".gcops" / workdirs(h)[0] / "gc.pid").exists(),
             30, "the mark's GC")
    if fault == "drop":
        h.sh(f"pkill -KILL -P {h.sshd_pid()}")
    else:
        proc.send_signal(getattr(signal, fault))
    code, doc, err = finish(proc, 60)
    assert code == {"SIGTERM": 130, "SIGKILL": -9, "drop": 1}[fault], err
    assert write_probe(h) == 400 and h.config_file.read_bytes() == original     # never read-only
    assert images.blob_digests_on_disk(h) == before
    if fault == "SIGTERM":                           # gcops cleaned up after itself
        assert not markers(h) and not workdirs(h)
    _after_fault(h, tmp_path, garbage, original)


@pytest.mark.parametrize("fault", ["SIGTERM", "SIGKILL", "drop", "max_window"])
def test_fault_during_the_window_restores(fault, host_factory, tmp_path):
    h = host_factory("cwin")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    slow_delta(h, 8)
    config = config_for(tmp_path, h, max_window="3s" if fault == "max_window" else "5m")
    proc = spawn_gcops("--config", str(config), "run", "--mode", "concurrent", "--json")
    gc_pid = h.config_file.parent / ".gcops" / "gc.pid"
    wait_for(lambda: gc_pid.exists() or proc.poll() is not None, 30, "the collector to start")
    assert write_probe(h) == 405
    if fault == "drop":
        h.sh(f"pkill -KILL -P {h.sshd_pid()}")
    elif fault in ("SIGTERM", "SIGKILL"):
        proc.send_signal(getattr(signal, fault))
    t0 = time.monotonic()
    code, doc, err = finish(proc, 90)
    # a dropped connection: gcops reconnects and waits for the collector, which finishes the run
    assert code == {"SIGTERM": 130, "SIGKILL": -9, "drop": 0, "max_window": 1}[fault], err
    if doc is not None:
        inst = doc["instances"][0]
        assert inst["status"] == ("ok" if fault == "drop" else "failed"), inst
        if fault == "drop":
            assert inst["blobs_deleted"] > 0 and write_probe(h) == 400
        if fault == "max_window":
            assert "max_window" in inst["error"] and time.monotonic() - t0 < 8, err
    if fault == "SIGKILL":     # nobody reads gc.sh's output any more: it restores once the collector ends
        wait_for(lambda: write_probe(h) == 400, 30, "gc.sh to restore on its own")
        # the swept blobs wait in the run's trash, taking room: `gcops recover` (the next action) empties it
        wait_for(lambda: list(h.storage_dir.glob(".gcops-trash-*")), 30, "the collector's trash")
        rec = run_gcops("--config", str(config), "recover", "--json")
        assert rec.returncode == 0, rec.stderr
        assert "removed what concurrent run" in json_doc(rec)["instances"][0]["nodes"][0]["detail"]
        assert not list(h.storage_dir.glob(".gcops-trash-*")) and not markers(h) and not workdirs(h)
    h.sh("rm -f /usr/local/sbin/find")
    _after_fault(h, tmp_path, garbage, original)
