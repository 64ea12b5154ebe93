"""Never leave a registry changed: real faults against real processes (issue 3)."""
from __future__ import annotations

import json

import signal
import time

import pytest

from tests.harness import images, netns
from tests.harness.gcops_cli import SLOW_RESTART_PLAYBOOK, instance_block, json_doc, run_gcops, spawn_gcops, write_config
from tests.integration.conftest import (all_pull, finish, make_garbage, slow_registry, spawn_until_gc, wait_for,
                                        write_probe)


def config_for(tmp_path, host, *, state="state", vars=None, max_window="5m", name="reg", extra=""):
    return write_config(tmp_path / f"gcops-{state}.toml",
                        [instance_block(name, host, vars=vars, extra=f'max_window = "{max_window}"\n{extra}')],
                        state_dir=tmp_path / state, client_key=host.client_key, known_hosts=host.known_hosts)


def gc_running(host):
    return (host.config_file.parent / ".gcops" / "gc.pid").exists()


def test_sigkill_during_window_host_restores_itself(host_factory, tmp_path):
    h = host_factory("kill9")
    garbage = make_garbage(h, tmp_path)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 120))}, max_window="10s")
    proc = spawn_until_gc(h, config, "run")
    assert write_probe(h) == 405
    entered = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # nobody acts: the watchdog on the host restores within max_window + 30 s
    wait_for(lambda: write_probe(h) == 400 and h.config_file.read_bytes() == original, 10 + 30,
             "the host to restore itself")
    assert time.monotonic() - entered <= 40
    wait_for(lambda: not (h.config_file.parent / ".gcops" / "lock").exists(), 5, "the watchdog to unlock")
    assert "restored" in (h.config_file.parent / ".gcops" / "watchdog.log").read_text()
    assert all_pull(h, garbage.kept)
    # the next run succeeds (real registry binary this time)
    proc = run_gcops("--config", str(config_for(tmp_path, h, state="state2")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_doc(proc)["instances"][0]["blobs_deleted"] > 0
    assert h.config_file.read_bytes() == original


def test_sigterm_during_window_restores_and_exits_130(host_factory, tmp_path):
    h = host_factory("term")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 120))})
    proc = spawn_until_gc(h, config, "run", "--json")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, doc, err = finish(proc, 30)
    assert code == 130, err
    assert time.monotonic() - t0 < 10
    assert doc["exit_code"] == 130 and doc["instances"][0]["status"] == "failed"
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert not (h.config_file.parent / ".gcops" / "lock").exists()
    assert all_pull(h, garbage.kept)


def test_max_window_shorter_than_gc(host_factory, tmp_path):
    h = host_factory("window")
    garbage = make_garbage(h, tmp_path)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 60))}, max_window="3s")
    refused_at = []
    proc = spawn_gcops("--config", str(config), "run", "--json")
    while proc.poll() is None:
        if write_probe(h) == 405:
            refused_at.append(time.monotonic())
        time.sleep(0.02)
    code, doc, err = finish(proc)
    assert code == 1, err
    inst = doc["instances"][0]
    assert inst["status"] == "failed" and "max_window" in inst["error"]
    assert refused_at and refused_at[-1] - refused_at[0] <= 3 + 4
    assert inst["window_seconds"] <= 3 + 4
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
    # the GC process of this run (on this host: other hosts may run theirs) was stopped; pids_in skips zombies
    assert not [p for p in netns.pids_in(net_ino=h._net_ino) if "slow-registry" in " ".join(netns.cmdline(p))]




def test_overrun_of_a_gc_deaf_to_sigterm_ends_within_max_window_and_the_margin(host_factory, tmp_path):
    """max_window 6 s, a registry that takes 1.5 s to restart, a GC that ignores SIGTERM: writes are accepted
    again by max_window + OVERRUN_MARGIN_SECONDS, as the client sees it and as reported (it was 17 s: the
    restore waited 10 s before SIGKILL, and the restart back came on top of max_window)."""
    from gcops.maintenance.window import OVERRUN_MARGIN_SECONDS

    h = host_factory("overrun")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "slowrestart.toml").write_text(SLOW_RESTART_PLAYBOOK)
    deaf = tmp_path / "deaf-gc"
    deaf.write_text("#!/bin/sh\n# TEST FIXTURE: a GC that ignores SIGTERM and never ends\ntrap '' TERM\n"
                    "while :; do sleep 0.1; done\n")
    deaf.chmod(0o755)

    def config(state, vars=None):
        return write_config(tmp_path / f"{state}.toml", [instance_block("reg", h, playbook="slowrestart", vars=vars,
                                                                         extra='max_window = "6s"')],
                            state_dir=tmp_path / state, client_key=h.client_key, known_hosts=h.known_hosts,
                            gcops_extra=f'playbook_dirs = ["{books}"]')

    refused_at = []
    proc = spawn_gcops("--config", str(config("state", {"registry": str(deaf)})), "run", "--json")
    while proc.poll() is None:
        if write_probe(h) != 400:
            refused_at.append(time.monotonic())
        time.sleep(0.02)
    code, doc, err = finish(proc)
    assert code == 1, err
    inst = doc["instances"][0]
    assert inst["status"] == "failed" and "max_window" in inst["error"], inst
    assert refused_at[-1] - refused_at[0] <= 6 + OVERRUN_MARGIN_SECONDS, refused_at[-1] - refused_at[0]
    assert inst["window_seconds"] <= 6 + OVERRUN_MARGIN_SECONDS, inst["window_seconds"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert not [p for p in netns.pids_in(net_ino=h._net_ino) if "deaf-gc" in " ".join(netns.cmdline(p))]
    # the user's next action: the same instance with its real GC fits the window and collects
    proc = run_gcops("--config", str(config("state2")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_doc(proc)["instances"][0]["blobs_deleted"] > 0 and all_pull(h, garbage.kept)


def test_two_concurrent_runs_one_waits_75(host_factory, tmp_path):
    h = host_factory("twice")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    slow = {"registry": str(slow_registry(tmp_path, 4))}
    first = spawn_until_gc(h, config_for(tmp_path, h, state="a", vars=slow), "run", "--json")
    second = run_gcops("--config", str(config_for(tmp_path, h, state="b", vars=slow)), "run", "--json")
    code, _, err = finish(first)
    assert second.returncode == 75, second.stderr
    assert "lock" in json_doc(second)["instances"][0]["error"]
    assert code == 0, err
    assert h.config_file.read_bytes() == original and write_probe(h) == 400


@pytest.mark.parametrize("case", ["enabled-true", "enabled-prefer", "lockfile"])
def test_metadata_database_is_refused_untouched(case, host_factory, tmp_path):
    extra = {"enabled-true": "database:\n  enabled: true\n", "enabled-prefer": "database:\n  enabled: prefer\n",
             "lockfile": ""}[case]
    h = host_factory("db", extra_config=extra)
    make_garbage(h, tmp_path, kept=1, deleted=1)
    if case == "lockfile":
        lock = h.storage_dir / "docker/registry/lockfiles/database-in-use"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
    original, du = h.config_file.read_bytes(), images.storage_du(h)
    blobs = images.blob_digests_on_disk(h)
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    assert proc.returncode == 1
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "skipped" and "database" in inst["error"]
    assert h.config_file.read_bytes() == original
    assert images.storage_du(h) == du and images.blob_digests_on_disk(h) == blobs
    assert not (h.config_file.parent / ".gcops").exists()


def test_already_read_only_stays_read_only(host_factory, tmp_path):
    h = host_factory("ro")
    garbage = make_garbage(h, tmp_path)
    text = h.config_file.read_text()
    h.config_file.write_text(text.replace("storage:\n", "storage:\n  maintenance:\n    readonly:\n"
                                                        "      enabled: true  # set by the admin\n", 1))
    h.ssh("systemctl restart docker-registry")
    assert write_probe(h) == 405
    original, pid = h.config_file.read_bytes(), h.registry_pid()
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["blobs_deleted"] > 0 and inst["reclaimed_bytes"] > 0
    assert h.config_file.read_bytes() == original
    assert write_probe(h) == 405
    assert h.registry_pid() == pid          # nothing to change, so no restart
    assert inst["window_seconds"] == 0
    assert all_pull(h, garbage.kept)


def test_empty_registry_has_nothing_to_do(host_factory, tmp_path):
    h = host_factory("empty")
    original, pid = h.config_file.read_bytes(), h.registry_pid()
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["reclaimed_bytes"] == 0 and inst["window_seconds"] == 0
    assert h.config_file.read_bytes() == original and h.registry_pid() == pid


def test_shell_metacharacters_never_execute(host_factory, tmp_path):
    h = host_factory("inject")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    canary = tmp_path / "pwned"
    # every kind of shell metacharacter in one value: command substitution both ways, quotes, separators
    payloads = [f"$(touch {canary})`touch {canary}`'; touch {canary}; echo \"; touch {canary}; '"]
    original = h.config_file.read_bytes()
    for i, payload in enumerate(payloads):
        for var in ("config", "registry", "registry_url", "storage_root", "service"):
            base = {"config": "/etc/docker/registry/config.yml", "registry_url": "http://127.0.0.1:5000",
                    "registry": "/usr/bin/docker-registry", "storage_root": "/var/lib/docker-registry",
                    "service": "docker-registry"}[var]
            config = config_for(tmp_path, h, state=f"s{i}{var}", vars={var: base + payload})
            commands = [["run", "--json"], ["plan", "--json"], ["run", "--dry-run"], ["check"]]
            for args in commands:
                proc = run_gcops("--config", str(config), *args)
                assert proc.returncode in (0, 1), (var, payload, args, proc.stderr[-2000:])
                assert not canary.exists(), (var, payload, args)
                if args == ["run", "--json"] and var == "service":
                    # the restart really ran, with the payload as one argument: the registry kept its
                    # writable config running, so gcops refused to GC and restored
                    assert "is NOT read-only" in json_doc(proc)["instances"][0]["error"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)


@pytest.mark.parametrize("char", ["\n", "\r", "\t", "\x1b"])
def test_control_characters_in_vars_are_refused_before_any_host(char, tmp_path, connection_counter):
    """A newline could end a line of the host's record (or a heredoc, in older designs): refused at validation."""
    payload = f"{char}GCOPS_RESTORE_EOF{char}touch {tmp_path}/pwned{char}"
    config = tmp_path / "gcops.toml"
    config.write_text(f"""[gcops]
state_dir = {json.dumps(str(tmp_path / "state"))}
[ssh]
port = {connection_counter.port}
[[instance]]
name = "x"
host = "127.0.0.1"
playbook = "distribution"
[instance.vars]
service = {json.dumps("docker-registry" + payload)}
""")
    for args in (["run", "--json"], ["run", "--dry-run"], ["plan"], ["recover"]):
        proc = run_gcops("--config", str(config), *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "instance[0].vars.service" in proc.stderr and "control character" in proc.stderr
    assert connection_counter.count == 0 and not (tmp_path / "pwned").exists()


def test_recover_after_kill_restores_before_the_watchdog(host_factory, tmp_path):
    h = host_factory("recover")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 120))}, max_window="10m")
    proc = spawn_until_gc(h, config, "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert write_probe(h) == 405
    rec = run_gcops("--config", str(config), "recover", "--json")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert json_doc(rec)["instances"][0]["nodes"][0]["action"] == "restored from host record"
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
    assert not list((tmp_path / "state" / "journal").rglob("*.json"))
    again = run_gcops("--config", str(config), "recover", "--json")
    assert again.returncode == 0 and json_doc(again)["instances"][0]["nodes"][0]["action"] == "none"


def test_recover_from_local_journal_when_host_record_is_gone(host_factory, tmp_path):
    h = host_factory("journal")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 120))}, max_window="10m")
    proc = spawn_until_gc(h, config, "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert h.config_file.read_bytes() != original, proc.stderr.read()
    h.kill_matching("slow-registry")
    h.sh(f"rm -rf {h.config_path.rsplit('/', 1)[0]}/.gcops")  # the host lost its record
    rec = run_gcops("--config", str(config), "recover", "--json")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert json_doc(rec)["instances"][0]["nodes"][0]["action"] == "restored from local journal"
    assert h.config_file.read_bytes() == original
    wait_for(lambda: write_probe(h) == 400, 15, "writes accepted")


def test_gc_failure_restores(host_factory, tmp_path):
    h = host_factory("gcfail")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    broken = tmp_path / "broken-registry"
    broken.write_text("#!/bin/sh\necho 'failed to garbage collect: injected test failure' >&2\nexit 1\n")  # TEST FIXTURE
    broken.chmod(0o755)
    proc = run_gcops("--config", str(config_for(tmp_path, h, vars={"registry": str(broken)})), "run", "--json")
    assert proc.returncode == 1
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "failed" and "injected test failure" in inst["error"]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400


def test_dropped_ssh_connection_during_gc_reconnects_and_finishes(host_factory, tmp_path):
    """The link drops mid-GC: the GC goes on on the host; gcops reconnects, waits for it, restores, succeeds."""
    h = host_factory("drop")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 5))})
    proc = spawn_until_gc(h, config, "run", "--json")
    h.sh(f"pkill -KILL -P {h.sshd_pid()}")   # kill the sessions: the connection drops, the listener stays
    code, doc, err = finish(proc, 120)
    assert code == 0, (doc["instances"][0]["status"], doc["instances"][0]["error"])
    inst = doc["instances"][0]
    assert inst["status"] == "ok" and inst["blobs_deleted"] > 0 and "gc_connection_lost" in err
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)


def test_dropped_ssh_connection_for_good_is_restored_by_the_host(host_factory, tmp_path):
    """The link drops mid-GC and stays down: the host restores itself when the GC ends; gcops says so."""
    h = host_factory("drop-for-good")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 4))}, max_window="20s")
    proc = spawn_until_gc(h, config, "run", "--json")
    h.stop_sshd()                             # listener and sessions gone: no reconnecting
    code, doc, err = finish(proc, 120)
    assert code in (1, 3), err
    wait_for(lambda: write_probe(h) == 400 and h.config_file.read_bytes() == original, 60, "the host to restore")
    h.start_sshd()
    recover = run_gcops("--config", str(config), "recover", "--json")
    assert recover.returncode == 0, recover.stdout + recover.stderr
    assert all_pull(h, garbage.kept)


def test_next_run_recovers_an_abandoned_change_first(host_factory, tmp_path):
    """gcops killed and its watchdog gone too (say the host rebooted): the next run restores, then works."""
    h = host_factory("abandoned")
    garbage = make_garbage(h, tmp_path)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 120))}, max_window="10m")
    proc = spawn_until_gc(h, config, "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    h.kill_matching("watchdog.sh")
    h.kill_matching("slow-registry")
    state = h.config_file.parent / ".gcops"
    (state / "deadline").write_text(f"{int(time.time()) - 120}\n")   # its deadline is long past
    assert write_probe(h) == 405
    proc = run_gcops("--config", str(config_for(tmp_path, h, state="next")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_doc(proc)["instances"][0]["blobs_deleted"] > 0
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
