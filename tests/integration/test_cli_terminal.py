"""gcops in a real terminal: tmux, 80 columns. The live per-instance view while GC runs, then the run
table and `gcops report`, with every instance name and every reclaimed figure whole on its row."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from gcops.report.rows import human_bytes
from tests.harness.gcops_cli import REPO, instance_block, run_gcops, write_config
from tests.harness.hosts import combine_known_hosts
from tests.integration.conftest import make_garbage, slow_registry, wait_for

NAMES = ("registry-eu-west-prod-1", "gitlab-omnibus-ci-cache")   # long names: the first thing a narrow table cuts


class Terminal:
    """A detached tmux session of a fixed size on its own server socket."""

    def __init__(self, name: str, width: int = 80, height: int = 50):
        self.socket = f"gcops-test-{name}-{id(self)}"
        self.width = width
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), "sh")
        self._tmux("set-option", "-t", "t", "history-limit", "5000")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=20).stdout

    def type(self, command: str) -> None:
        self._tmux("send-keys", "-t", "t", command, "Enter")

    def screen(self) -> str:
        """What the terminal shows, scroll-back included (lines as drawn, wrapping visible)."""
        return self._tmux("capture-pane", "-p", "-t", "t", "-S", "-")

    def screen_after(self, pattern: str) -> str | None:
        """The screen once ``pattern`` shows on it, else None."""
        screen = self.screen()
        return screen if re.search(pattern, screen) else None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def terminal():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install.sh installs it)")
    term = Terminal("cli")
    yield term
    term.close()


def gcops_line(*args: str) -> str:
    return " ".join(["env", f"PYTHONPATH={shlex.quote(str(REPO))}", "GCOPS_CONFIG=", shlex.quote(sys.executable),
                     "-m", "gcops", *(shlex.quote(a) for a in args)])


def row_of(screen: str, name: str) -> str:
    rows = [line for line in screen.splitlines() if name in line]
    assert rows, f"{name} not shown whole:\n{screen}"
    return rows[-1]


def test_live_view_then_run_table_and_report_fit_80_columns(host_factory, tmp_path, terminal):
    hosts = [host_factory(f"term{i}") for i in range(2)]
    slow = slow_registry(tmp_path, 3)   # GC takes 3 s more: the live view is up long enough to be seen
    for i, h in enumerate(hosts):
        make_garbage(h, tmp_path, seed=i + 3, kept=1, deleted=1 + i)
    config = write_config(tmp_path / "gcops.toml",
                          [instance_block(name, h, vars={"registry": str(slow)}) for name, h in zip(NAMES, hosts)],
                          state_dir=tmp_path / "state", client_key=hosts[0].client_key,
                          known_hosts=combine_known_hosts(hosts, tmp_path / "known_hosts"))

    terminal.type(gcops_line("run", *NAMES, "--config", str(config)) + "; echo gcops-exit=$?")

    # 1. the live view: one row per instance, with its step and storage, while GC runs
    def live():
        screen = terminal.screen()
        if re.search(r"gcops-exit=\d", screen):
            raise AssertionError(f"the run ended before its live view was seen:\n{screen}")
        view = screen.rsplit("elapsed", 1)[1] if "elapsed" in screen else ""   # the latest drawing of the view
        rows = [line for line in view.splitlines() if line.lstrip().startswith(NAMES)]
        return rows if len(rows) == 2 and all(re.search(r" gc \d+\.\ds ", r) for r in rows) else None
    rows = wait_for(live, 60, "the live view showing both instances in GC", interval=0.1)
    for name, row in zip(NAMES, rows):
        assert row.split()[0] == name and re.search(r"\d+\.\d (KiB|MiB)$", row.rstrip()), rows  # storage measured

    # 2. the run table when it is done: each name and its reclaimed figure whole, on one row
    screen = wait_for(lambda: terminal.screen_after(r"gcops-exit=\d"), 120, "the run to end")
    assert "gcops-exit=0" in screen, screen
    doc = json.loads(run_gcops("--config", str(config), "report", "--format", "json").stdout)
    [run] = doc["runs"]
    reclaimed = {i["name"]: i["reclaimed_bytes"] for i in run["instances"]}
    assert all(v > 0 for v in reclaimed.values()) and reclaimed[NAMES[0]] != reclaimed[NAMES[1]]
    final = screen.split("gcops run " + run["run_id"], 1)[1]
    for name in NAMES:
        row = row_of(final, name)
        assert human_bytes(reclaimed[name]) in row and "ok" in row, row
        assert len(row.rstrip()) <= 80

    # 3. `gcops report` in the same 80 columns (global option after the command)
    terminal.type(gcops_line("report", "--config", str(config)) + "; echo report-exit=$?")
    screen = wait_for(lambda: terminal.screen_after(r"report-exit=\d"), 60, "the report")
    assert "report-exit=0" in screen, screen
    report = screen.split("space reclaimed by registry garbage collection", 1)[1]
    for name in NAMES:
        row = row_of(report, name)
        inst = next(i for i in run["instances"] if i["name"] == name)
        for figure in ("reclaimed_bytes", "storage_bytes_before", "storage_bytes_after"):
            assert human_bytes(inst[figure]) in row, (figure, row)
    assert "Window" in report
