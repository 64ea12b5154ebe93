"""Did the registry restart after the read-only config was written? (registry_processes.sh output)"""
from __future__ import annotations

import subprocess
import sys

import pytest

from gcops.hostside import scripts
from gcops.registry.restart_check import NO, UNKNOWN, YES, parse_processes, restarted_since


def test_parse_processes_converts_ticks_to_seconds():
    procs = parse_processes("uptime=120.50\nclk_tck=100\nprocess=42 12000\nprocess=43 12100\nnoise\n")
    assert procs.uptime == 120.5 and procs.processes == {42: 120.0, 43: 121.0}


def test_parse_processes_needs_the_uptime():
    with pytest.raises(ValueError):
        parse_processes("process=1 2\n")


@pytest.mark.parametrize("starts, expected", [
    ({}, UNKNOWN),                   # no registry process found: nothing proven
    ({7: 100.01}, YES),
    ({7: 100.0}, NO),                # the same tick as the mark: not provably after
    ({7: 101.0, 8: 99.0}, NO),       # one process kept running through the "restart"
    ({7: 101.0, 8: 102.0}, YES),
])
def test_restarted_since(starts, expected):
    assert restarted_since(100.0, parse_processes("uptime=200\n" + "".join(
        f"process={pid} {int(round(s * 100))}\n" for pid, s in starts.items()))) == expected


@pytest.mark.parametrize("shell", [["dash", "-c"], ["busybox", "sh", "-c"]])
def test_script_finds_a_process_serving_the_config_and_sees_it_start_after_a_mark(shell, tmp_path):
    (tmp_path / "config.yml").write_text("version: 0.1\n")
    cfg = str(tmp_path / "config.yml")
    run = lambda: parse_processes(subprocess.run(  # noqa: E731
        [*shell, scripts.text("registry_processes"), "x", cfg], capture_output=True, text=True, check=True).stdout)
    mark = run().uptime
    # stands in for `registry serve CONFIG`
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serve", cfg])
    try:
        found = None
        for _ in range(100):           # /proc shows it as soon as it exists; poll, no fixed sleep
            found = run()
            if proc.pid in found.processes:
                break
        assert proc.pid in found.processes
        assert restarted_since(mark, found) in (YES, NO)   # same-tick starts are NO by design
        assert restarted_since(found.processes[proc.pid] - 1, found) == YES
        assert restarted_since(found.processes[proc.pid] + 1, found) == NO
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("shell", [["dash", "-c"], ["busybox", "sh", "-c"]])
def test_script_judges_a_mark_itself_for_host_side_callers(shell, tmp_path):
    (tmp_path / "config.yml").write_text("version: 0.1\n")
    cfg = str(tmp_path / "config.yml")

    def judge(mark):
        out = subprocess.run([*shell, scripts.text("registry_processes"), "x", cfg, str(mark)],
                             capture_output=True, text=True, check=True).stdout
        return parse_processes(out), dict(line.split("=", 1) for line in out.splitlines())["registry_restarted"]

    assert judge(0)[1] == UNKNOWN                 # nothing serves this config
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "serve", cfg])
    try:
        for _ in range(100):
            found, _ = judge(0)
            if proc.pid in found.processes:
                break
        start = found.processes[proc.pid]
        assert judge(start - 0.5)[1] == YES       # started after the mark: restarted
        assert judge(start + 0.5)[1] == NO        # already running at the mark: not restarted
    finally:
        proc.kill()
        proc.wait()
