"""`gcops schedule`: systemd units that systemd accepts, a cron line cron accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gcops.actions import schedule
from gcops.actions.schedule import install, remove, show

GCOPS = [sys.executable, "-m", "gcops"]  # exists, so systemd-analyze can check ExecStart


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "etc gcops" / "config.toml"  # a space: must survive quoting
    path.parent.mkdir()
    path.write_text("[gcops]\n")
    return path


@pytest.fixture(autouse=True)
def never_touch_the_real_systemd(monkeypatch, tmp_path):
    monkeypatch.setattr(schedule, "SYSTEMD_RUNNING_MARKER", tmp_path / "no-systemd-here")


def install_units(config, unit_dir, at="03:15", targets=("gitlab-prod", "registry ha")):
    return install(config_path=config, targets=list(targets), at=at, cron=False,
                   unit_dir=unit_dir, gcops_command=GCOPS, echo=lambda text: None)


def test_install_writes_service_and_timer(tmp_path, config):
    unit_dir = tmp_path / "units"
    written = install_units(config, unit_dir)

    assert written == [unit_dir / "gcops.service", unit_dir / "gcops.timer"]
    service = (unit_dir / "gcops.service").read_text()
    timer = (unit_dir / "gcops.timer").read_text()
    assert "Type=oneshot" in service and "Restart=" not in service.replace("No Restart=", "")
    assert "After=network-online.target" in service and "Wants=network-online.target" in service
    assert f'--config "{config}" run gitlab-prod "registry ha"' in service
    assert "OnCalendar=*-*-* 03:15:00\n" in timer
    assert "Persistent=true\n" in timer and "Unit=gcops.service\n" in timer
    assert "WantedBy=timers.target" in timer
    assert oct((unit_dir / "gcops.timer").stat().st_mode & 0o777) == "0o644"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path, config):
    unit_dir = tmp_path / "units"
    install_units(config, unit_dir)

    units = [str(unit_dir / "gcops.service"), str(unit_dir / "gcops.timer")]
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", *units],
                            capture_output=True, text=True)

    assert verify.returncode == 0, verify.stderr[-2000:]
    assert [line for line in verify.stderr.splitlines() if "gcops." in line] == []  # no warning

    # systemd's own reading of ExecStart: at debug level, verify dumps the units on stdout
    dump = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", *units],
                          capture_output=True, text=True,
                          env={**os.environ, "SYSTEMD_LOG_LEVEL": "debug"})
    command_lines = [line.strip() for line in dump.stdout.splitlines() if "Command Line:" in line]
    if command_lines:  # the dump format is not an interface: check only when it is there
        assert command_lines[0] == (f'Command Line: {sys.executable} -m gcops --config "{config}" '
                                    'run gitlab-prod "registry ha"')


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_would_catch_a_broken_unit(tmp_path, config):
    unit_dir = tmp_path / "units"
    install_units(config, unit_dir)
    service = unit_dir / "gcops.service"
    service.write_text(service.read_text().replace(sys.executable, "/nonexistent/gcops"))

    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--recursive-errors=no",
                             str(service)], capture_output=True, text=True)
    assert verify.returncode != 0


def test_arguments_are_quoted_for_systemd():
    assert schedule.systemd_quote("plain/path-1.toml") == "plain/path-1.toml"
    assert schedule.systemd_quote("with space") == '"with space"'
    assert schedule.systemd_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert schedule.systemd_quote("100%$HOME") == "100%%$$HOME"
    assert schedule.systemd_quote(";") == '";"'
    assert schedule.systemd_quote("") == '""'


def test_show_and_remove(tmp_path, config):
    unit_dir = tmp_path / "units"
    cron_file = tmp_path / "cron.d" / "gcops"
    install_units(config, unit_dir)

    shown = show(unit_dir=unit_dir, cron_file=cron_file)
    assert "OnCalendar=*-*-* 03:15:00" in shown and str(unit_dir / "gcops.service") in shown

    removed = remove(unit_dir=unit_dir, cron_file=cron_file, echo=lambda text: None)
    assert removed == [unit_dir / "gcops.service", unit_dir / "gcops.timer"]
    assert list(unit_dir.iterdir()) == []
    assert "No gcops schedule installed" in show(unit_dir=unit_dir, cron_file=cron_file)
    assert remove(unit_dir=unit_dir, cron_file=cron_file) == []


def test_files_gcops_did_not_write_are_left_alone(tmp_path, config):
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / "gcops.service").write_text("[Service]\nExecStart=/usr/local/bin/my-own-gc\n")

    with pytest.raises(ValueError, match="not written by gcops"):
        install_units(config, unit_dir)
    with pytest.raises(ValueError, match="not written by gcops"):
        remove(unit_dir=unit_dir, cron_file=tmp_path / "gcops")
    assert (unit_dir / "gcops.service").exists()


def test_cron_variant_writes_one_valid_line(tmp_path, config):
    cron_file = tmp_path / "cron.d" / "gcops"
    written = install(config_path=config, targets=["gitlab-prod"], at="23:05", cron=True,
                      unit_dir=tmp_path / "units", cron_file=cron_file, gcops_command=GCOPS,
                      echo=lambda text: None)

    assert written == [cron_file]
    text = cron_file.read_text()
    assert text.startswith("#") and text.endswith("\n")
    assert not (tmp_path / "units").exists()
    assert oct(cron_file.stat().st_mode & 0o777) == "0o644"
    [entry] = [line for line in text.splitlines() if line and not line.startswith("#")
               and "=" not in line.split()[0]]
    match = re.fullmatch(r"(\d+) (\d+) \* \* \* root (.+) >>/var/log/gcops\.log 2>&1", entry)
    assert match and match.group(1, 2) == ("5", "23")
    assert shlex.split(match[3]) == [*GCOPS, "--config", str(config), "run", "gitlab-prod"]

    assert remove(unit_dir=tmp_path / "units", cron_file=cron_file) == [cron_file]


def test_cron_escapes_percent_signs(tmp_path):
    config = tmp_path / "50%.toml"
    config.write_text("")
    cron_file = tmp_path / "gcops"
    install(config_path=config, targets=[], at="01:00", cron=True, unit_dir=tmp_path,
            cron_file=cron_file, gcops_command=GCOPS, echo=lambda text: None)

    assert "50\\%.toml" in cron_file.read_text()


def test_cron_file_name_must_have_no_dot(tmp_path, config):
    with pytest.raises(ValueError, match="dot"):
        install(config_path=config, targets=[], at="01:00", cron=True, unit_dir=tmp_path,
                cron_file=tmp_path / "gcops.cron", gcops_command=GCOPS)


@pytest.mark.parametrize("at", ["3.15", "24:00", "12:60", "noon", "", "03:15:00", "-1:30"])
def test_bad_at_is_rejected(tmp_path, config, at):
    with pytest.raises(ValueError, match="--at"):
        install_units(config, tmp_path / "units", at=at)
    assert not (tmp_path / "units").exists()


def test_missing_config_and_relative_command_are_rejected(tmp_path, config):
    with pytest.raises(ValueError, match="does not exist"):
        install_units(tmp_path / "missing.toml", tmp_path / "units")
    with pytest.raises(ValueError, match="absolute path"):
        install(config_path=config, targets=[], at="01:00", cron=False, unit_dir=tmp_path,
                gcops_command=["gcops"])
