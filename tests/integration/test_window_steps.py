"""Deletions inside the window obey its deadline and the lock, as the GC does (issue 19, defect 5).

Retention's tag deletion is slowed by an `rm` stand-in on the host's PATH. Past max_window, gcops
stops it and restores; with gcops killed, the watchdog stops it before writes are accepted again.
"""
from __future__ import annotations

import os
import signal

from tests.harness.gcops_cli import instance_block, run_gcops, spawn_gcops, write_config
from tests.integration.conftest import finish, wait_for, write_probe
from tests.integration.test_retention import RULE, push, tags_dir


def slow_tag_rm(h, seconds: float):
    """TEST FIXTURE: an `rm` stand-in on the host's PATH that, for retention's tag directories, writes its
    pid, sleeps `seconds`, then writes `done` and removes them. Gives (pid file, done file)."""
    pid_file, done_file = h.dir / "slow-rm.pid", h.dir / "slow-rm.done"
    stub = h.dir / "bin" / "rm"
    stub.write_text("#!/bin/sh\n# TEST FIXTURE (gcops integration tests): a slow rm for tag deletions\n"
                    'case "$*" in */index/*) ;; */_manifests/tags/*)\n'
                    f'  echo $$ > {pid_file}; sleep {seconds:g}; echo done > {done_file} ;;\nesac\n'
                    'exec /bin/rm "$@"\n')
    stub.chmod(0o755)
    return pid_file, done_file


def alive(pid_file) -> bool:
    try:
        os.kill(int(pid_file.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def setup(h, tmp_path, max_window: str):
    push(h, tmp_path, "team/app", "old", 30, seed=1)
    push(h, tmp_path, "team/app", "new", 1, seed=2)
    config = write_config(tmp_path / "gcops.toml",
                          [instance_block("reg", h, extra=f'max_window = "{max_window}"') + RULE],
                          state_dir=tmp_path / "state", client_key=h.client_key, known_hosts=h.known_hosts)
    return config, h.config_file.read_bytes()


def test_a_deletion_past_max_window_is_stopped_before_writes_are_accepted(host_factory, tmp_path):
    h = host_factory("wsdead")
    config, original = setup(h, tmp_path, "12s")
    pid_file, done_file = slow_tag_rm(h, 90)
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1, proc.stderr
    assert pid_file.exists(), "the deletion never started: the test proves nothing"
    assert not alive(pid_file) and not done_file.exists()        # stopped, never finished
    assert "past max_window" in proc.stdout
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert (tags_dir(h, "team/app") / "old").is_dir()


def test_the_watchdog_stops_a_deletion_of_a_killed_gcops_before_writes_are_accepted(host_factory, tmp_path):
    h = host_factory("wswatch")
    config, original = setup(h, tmp_path, "6s")
    pid_file, done_file = slow_tag_rm(h, 90)
    proc = spawn_gcops("--config", str(config), "run", "--json")
    wait_for(pid_file.exists, 60, "the slow tag deletion")
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    wait_for(lambda: write_probe(h) == 400, 90, "the watchdog's restore")
    assert not alive(pid_file) and not done_file.exists()        # writes accepted: the deletion is gone
    assert h.config_file.read_bytes() == original
    (h.dir / "bin" / "rm").unlink()                              # the user's next run deletes the tag
    again = run_gcops("--config", str(config), "run", "--json")
    assert again.returncode == 0, again.stderr
    assert not (tags_dir(h, "team/app") / "old").exists() and (tags_dir(h, "team/app") / "new").is_dir()
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
