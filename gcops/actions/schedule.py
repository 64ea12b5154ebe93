"""``gcops schedule``: a nightly run as a systemd timer + service, or as a cron.d line.

Times are the machine's local time (systemd OnCalendar= and cron both use it).
Overlapping runs are not prevented here: gcops takes its own per-instance locks
and a second run exits 75.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from gcops.errors import HostError
from gcops.textfiles import write_atomically

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_CRON_FILE = Path("/etc/cron.d/gcops")
SYSTEMD_RUNNING_MARKER = Path("/run/systemd/system")  # exists iff systemd is PID 1
SERVICE_NAME = "gcops.service"
TIMER_NAME = "gcops.timer"
CRON_LOG = "/var/log/gcops.log"
MARKER = "Managed by gcops"

_AT = re.compile(r"^(\d{1,2}):(\d{2})$")
_CRON_NAME = re.compile(r"^[A-Za-z0-9_-]+$")  # run-parts rules: no dots
_SYSTEMD_SAFE = re.compile(r"^[A-Za-z0-9_@+=:,./%$-]+$")


class ScheduleError(HostError):
    """systemctl refused the change; the message is one line for the user."""


def parse_at(at: str) -> tuple[int, int]:
    """``"03:15"`` -> ``(3, 15)``; ValueError for anything that is not a time of day."""
    match = _AT.match(at.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"--at: {at!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return int(match[1]), int(match[2])


def systemd_quote(arg: str) -> str:
    """One argv word for ExecStart=: specifiers (%) and variables ($) doubled, quoted if needed."""
    literal = arg.replace("%", "%%").replace("$", "$$")
    if arg and _SYSTEMD_SAFE.match(arg):
        return literal
    return '"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cron_quote(argv: Sequence[str]) -> str:
    """A shell command line for a crontab (where an unescaped % would end the command)."""
    return " ".join(shlex.quote(arg) for arg in argv).replace("%", "\\%")


def run_argv(*, config_path: Path, targets: Sequence[str], gcops_command: Sequence[str]) -> list[str]:
    """The scheduled command; ValueError when it could not run unattended."""
    if not gcops_command or not os.path.isabs(gcops_command[0]):
        raise ValueError(f"gcops command {list(gcops_command)!r} must start with an absolute path")
    config = Path(config_path).expanduser().absolute()
    if not config.is_file():
        raise ValueError(f"config file {config} does not exist")
    argv = [*gcops_command, "--config", str(config), "run", *targets]
    for arg in argv:
        if any(ord(char) < 32 or ord(char) == 127 for char in arg):
            raise ValueError(f"argument {arg!r} contains a control character")
    return argv


def service_unit(argv: Sequence[str]) -> str:
    return f"""\
# {MARKER} (gcops schedule install); `gcops schedule remove` deletes it.
[Unit]
Description=gcops: offline garbage collection of container registries
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
# No Restart= and no overlap protection here: gcops locks each instance itself,
# and a run that finds an instance locked exits 75 without touching it.
ExecStart={" ".join(systemd_quote(arg) for arg in argv)}
# On SIGTERM gcops restores every instance (config, service state) before it
# exits: signal only gcops itself and give it time to do so.
KillMode=mixed
TimeoutStopSec=15min
"""


def timer_unit(hour: int, minute: int, randomized_delay: str) -> str:
    return f"""\
# {MARKER} (gcops schedule install); `gcops schedule remove` deletes it.
[Unit]
Description=Nightly gcops garbage collection of container registries

[Timer]
OnCalendar=*-*-* {hour:02d}:{minute:02d}:00
Persistent=true
RandomizedDelaySec={randomized_delay}
Unit={SERVICE_NAME}

[Install]
WantedBy=timers.target
"""


def cron_entry(hour: int, minute: int, argv: Sequence[str]) -> str:
    return f"""\
# {MARKER} (gcops schedule install --cron); `gcops schedule remove` deletes it.
# Overlapping runs are prevented by gcops' own per-instance locks (exit 75).
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
{minute} {hour} * * * root {cron_quote(argv)} >>{CRON_LOG} 2>&1
"""


def _written_by_gcops(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    if not _written_by_gcops(path):
        raise ValueError(f"{path} exists and was not written by gcops; move it away first")
    write_atomically(path, text, mode)  # 0644: cron ignores files others can write


def _manages_systemd(unit_dir: Path) -> bool:
    """Whether to call systemctl: only for the live unit dir of a running systemd."""
    return (Path(unit_dir) == DEFAULT_UNIT_DIR and shutil.which("systemctl") is not None
            and SYSTEMD_RUNNING_MARKER.is_dir())


def _systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise ScheduleError(f"systemctl {' '.join(args)} failed: "
                            f"{detail[-1] if detail else f'exit {result.returncode}'}")


def install(*, config_path: Path, targets: Sequence[str], at: str, cron: bool, unit_dir: Path,
            cron_file: Path = DEFAULT_CRON_FILE, gcops_command: Sequence[str],
            randomized_delay: str = "10min", echo: Callable[[str], None] = print) -> list[Path]:
    """Write the schedule files and return their paths.

    Enables the timer only when ``unit_dir`` is /etc/systemd/system on a running
    systemd; otherwise tells (via ``echo``) what to run. Raises ValueError for
    bad input, ScheduleError when systemctl fails, OSError when a file cannot be
    written.
    """
    hour, minute = parse_at(at)
    argv = run_argv(config_path=config_path, targets=targets, gcops_command=gcops_command)
    if cron:
        cron_file = Path(cron_file)
        if not _CRON_NAME.match(cron_file.name):
            raise ValueError(f"{cron_file}: cron ignores files whose name has a dot or "
                             "characters other than letters, digits, - and _")
        _write_atomically(cron_file, cron_entry(hour, minute, argv))
        echo(f"Installed {cron_file}: gcops runs daily at {hour:02d}:{minute:02d}, "
             f"logging to {CRON_LOG}.")
        return [cron_file]

    if not re.fullmatch(r"[0-9a-z ]+", randomized_delay):
        raise ValueError(f"randomized delay {randomized_delay!r} is not a systemd time span")
    unit_dir = Path(unit_dir)
    service, timer = unit_dir / SERVICE_NAME, unit_dir / TIMER_NAME
    _write_atomically(service, service_unit(argv))
    _write_atomically(timer, timer_unit(hour, minute, randomized_delay))
    if _manages_systemd(unit_dir):
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", TIMER_NAME)
        echo(f"Enabled {TIMER_NAME}: gcops runs daily at {hour:02d}:{minute:02d}.")
    else:
        echo(f"Wrote {service} and {timer}. To activate them, link or copy them into "
             f"{DEFAULT_UNIT_DIR} if needed, then run:\n"
             f"  systemctl daemon-reload && systemctl enable --now {TIMER_NAME}")
    return [service, timer]


def show(*, unit_dir: Path, cron_file: Path = DEFAULT_CRON_FILE) -> str:
    """The installed schedule files (and the timer's next run, when systemd is live)."""
    sections = []
    for path in (Path(unit_dir) / SERVICE_NAME, Path(unit_dir) / TIMER_NAME, Path(cron_file)):
        if path.is_file():
            sections.append(f"# {path}\n{path.read_text(encoding='utf-8').rstrip()}")
    if not sections:
        return (f"No gcops schedule installed (looked for {SERVICE_NAME} and {TIMER_NAME} "
                f"in {unit_dir}, and for {cron_file}).")
    if _manages_systemd(unit_dir) and (Path(unit_dir) / TIMER_NAME).is_file():
        timers = subprocess.run(["systemctl", "list-timers", "--all", "--no-pager", TIMER_NAME],
                                capture_output=True, text=True, check=False)
        if timers.returncode == 0 and timers.stdout.strip():
            sections.append(timers.stdout.rstrip())
    return "\n\n".join(sections)


def remove(*, unit_dir: Path, cron_file: Path = DEFAULT_CRON_FILE,
           echo: Callable[[str], None] = print) -> list[Path]:
    """Delete the schedule files gcops wrote (disabling the timer first when systemd is live).

    Returns what was deleted. Raises ValueError for a file gcops did not write,
    ScheduleError when systemctl fails.
    """
    unit_dir = Path(unit_dir)
    units = [unit_dir / SERVICE_NAME, unit_dir / TIMER_NAME]
    present = [path for path in (*units, Path(cron_file)) if path.exists()]
    for path in present:
        if not _written_by_gcops(path):
            raise ValueError(f"{path} was not written by gcops; remove it yourself")
    live = _manages_systemd(unit_dir) and any(path in units for path in present)
    if live:
        _systemctl("disable", "--now", TIMER_NAME)
    for path in present:
        path.unlink()
    if live:
        _systemctl("daemon-reload")
    elif any(path in units for path in present):
        echo(f"Removed the units from {unit_dir}; if they were active, run: "
             f"systemctl disable --now {TIMER_NAME} && systemctl daemon-reload")
    return present
