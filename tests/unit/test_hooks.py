"""User hooks: what they are told, and that a broken hook never breaks a run."""

from __future__ import annotations

import json
import os
import time

import pytest

from gcops.maintenance import hooks
from gcops.maintenance.hooks import run_hook

RUN = {
    "run_id": "20261129T020000Z-3f2a", "command": "run", "dry_run": False,
    "started_at": "2026-11-29T02:00:00Z", "finished_at": "2026-11-29T02:03:12Z", "exit_code": 1,
    "instances": [
        {"name": "gitlab-prod", "status": "ok", "reclaimed_bytes": 1000},
        {"name": "registry-ha", "status": "failed", "reclaimed_bytes": None},
    ],
    "totals": {"reclaimed_bytes": 1000, "instances_ok": 1, "instances_failed": 1},
}


class RecordingLog:
    def __init__(self):
        self.events: list[tuple[str, str, dict]] = []

    def _record(self, level):
        return lambda event, **fields: self.events.append((level, event, fields))

    def __getattr__(self, level):
        return self._record(level)


def env_dump_command(tmp_path) -> str:
    out = tmp_path / "env.txt"
    return f"env > {out}; cat \"$GCOPS_REPORT_JSON\" > {tmp_path / 'report.json'}"


def read_env(tmp_path) -> dict[str, str]:
    lines = (tmp_path / "env.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_after_hook_receives_the_run_in_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INHERITED_BY_HOOK", "yes")
    monkeypatch.setenv("GCOPS_HISTORY_PASSWORD", "history-secret")
    log = RecordingLog()

    assert run_hook("after", env_dump_command(tmp_path), RUN, log=log) is True

    env = read_env(tmp_path)
    assert env["GCOPS_HOOK"] == "after"
    assert env["GCOPS_RUN_ID"] == "20261129T020000Z-3f2a"
    assert env["GCOPS_EXIT_CODE"] == "1"
    assert env["GCOPS_STATUS"] == "failed"
    assert env["GCOPS_RECLAIMED_BYTES"] == "1000"
    assert env["GCOPS_INSTANCES_OK"] == "1"
    assert env["GCOPS_INSTANCES_FAILED"] == "1"
    assert env["GCOPS_INSTANCES"] == "gitlab-prod,registry-ha"
    assert env["GCOPS_FAILED_INSTANCES"] == "registry-ha"
    assert env["INHERITED_BY_HOOK"] == "yes"
    assert "GCOPS_HISTORY_PASSWORD" not in env          # gcops' own secret, not the hook's
    assert json.loads((tmp_path / "report.json").read_text()) == RUN
    assert not os.path.exists(env["GCOPS_REPORT_JSON"])  # removed afterwards
    assert not [e for e in log.events if e[1] == "hook_failed"]


def test_successful_run_status_is_ok(tmp_path):
    ok_run = {**RUN, "exit_code": 0, "instances": RUN["instances"][:1],
              "totals": {"reclaimed_bytes": 1000, "instances_ok": 1, "instances_failed": 0}}
    assert run_hook("after", env_dump_command(tmp_path), ok_run, log=RecordingLog())

    env = read_env(tmp_path)
    assert (env["GCOPS_STATUS"], env["GCOPS_EXIT_CODE"], env["GCOPS_FAILED_INSTANCES"]) == ("ok", "0", "")


def test_before_hook_gets_no_outcome(tmp_path):
    starting = {"run_id": "r1", "command": "run", "dry_run": False,
                "started_at": "2026-11-29T02:00:00Z", "instances": [{"name": "gitlab-prod"}]}
    assert run_hook("before", env_dump_command(tmp_path), starting, log=RecordingLog())

    env = read_env(tmp_path)
    assert env["GCOPS_HOOK"] == "before" and env["GCOPS_INSTANCES"] == "gitlab-prod"
    assert "GCOPS_EXIT_CODE" not in env and "GCOPS_STATUS" not in env


def test_no_hook_is_a_success():
    assert run_hook("on_error", None, RUN, log=RecordingLog()) is True


def test_a_failing_hook_is_logged_and_returns_false():
    log = RecordingLog()

    assert run_hook("on_error", "echo notifying; echo oops >&2; exit 3", RUN, log=log) is False

    [(level, event, fields)] = [e for e in log.events if e[1] == "hook_failed"]
    assert level == "warning" and fields["hook"] == "on_error" and fields["exit_code"] == 3
    assert "oops" in fields["output"]


def test_a_hook_that_cannot_start_returns_false(monkeypatch):
    def no_shell(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/bin/sh")

    monkeypatch.setattr(hooks.subprocess, "Popen", no_shell)
    log = RecordingLog()

    assert run_hook("after", "true", RUN, log=log) is False
    [(_, event, fields)] = log.events
    assert event == "hook_failed" and "/bin/sh" in fields["error"]


def test_a_hanging_hook_is_killed_with_its_children(tmp_path):
    log = RecordingLog()
    started = time.monotonic()

    # the background sleep keeps the hook's output open: it must not make gcops wait
    assert run_hook("after", "sleep 60 & sleep 60", RUN, log=log, timeout=0.5) is False

    assert time.monotonic() - started < 15
    [(_, _, fields)] = [e for e in log.events if e[1] == "hook_failed"]
    assert fields["reason"] == "timeout"


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        run_hook("sometimes", "true", RUN, log=RecordingLog())
