"""Did the registry demonstrably restart after the read-only config was written?

Without probe credentials behind authentication, this is the only evidence
gcops accepts that the registry runs with the read-only config. The host
script `registry_processes.sh CONFIG` reports the boot-clock uptime and the
start time (in clock ticks since boot) of every process serving CONFIG; taken
once before the config is written (the mark) and once after the restart, the
answer is "yes" only if at least one registry process runs and every one of
them started after the mark. The boot clock makes this immune to wall-clock
steps and to the 1-second granularity of file times.
"""
from __future__ import annotations

from dataclasses import dataclass

from gcops.hosts import Host
from gcops.hostside import scripts

YES, NO, UNKNOWN = "yes", "no", "unknown"


@dataclass(frozen=True)
class RegistryProcesses:
    uptime: float                        # seconds since boot when the script ran
    processes: dict[int, float]          # pid -> start, in seconds since boot


def parse_processes(text: str) -> RegistryProcesses:
    """Parse registry_processes.sh output. Raises ValueError when the uptime line is missing."""
    uptime, tck, raw = None, 100.0, {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        try:
            if key == "uptime":
                uptime = float(value)
            elif key == "clk_tck" and float(value) > 0:
                tck = float(value)
            elif key == "process":
                pid, start = value.split()
                raw[int(pid)] = int(start)
        except ValueError:
            continue
    if uptime is None:
        raise ValueError("registry_processes.sh printed no uptime")
    return RegistryProcesses(uptime, {pid: ticks / tck for pid, ticks in raw.items()})


def processes(host: Host, config_path: str) -> RegistryProcesses:
    """Ask the host. Raises HostError, ValueError."""
    return parse_processes(host.run(scripts.command("registry_processes", config_path), timeout=30).text)


def restarted_since(mark: float, now: RegistryProcesses) -> str:
    """YES if registry processes run and all started after `mark` (uptime seconds), NO if one is older, else UNKNOWN."""
    if not now.processes:
        return UNKNOWN
    return YES if all(start > mark for start in now.processes.values()) else NO
