"""What gcops runs on a registry host: static scripts (`sh/*.sh`) with every value an argument.

Everything that must survive gcops itself lives on the host, in a directory
beside the registry config (`<config dir>/.gcops`), so it follows the config
and works with or without systemd:

    lock/            mkdir-atomic lock; lock/run_id names the holder, lock/owner who it is
    params           this run's parameters, one key=value a line (read as data by the scripts)
    original, staged hard links to the original config's inode (copies across filesystems):
                     restoring is a rename that needs no free space
    marker           "this run changed the registry": written last before any change (the commit point)
    deadline         epoch seconds after which the watchdog restores
    restore.sh       the one restore procedure: gcops, the watchdog, gc.sh and `gcops recover` run it
    watchdog.sh      detached loop that runs restore.sh past the deadline
    gc.pid           the process group of this run's GC, so a restore can stop it first

The builders below give complete shell commands (`sh/<name>.sh` passed to
`/bin/sh -c` with quoted arguments); `outcomes.py` turns what the scripts print
into typed results.
"""
from __future__ import annotations

import hashlib
import posixpath
import shlex
from dataclasses import dataclass

from gcops.hostside import scripts

GRACE_SECONDS = 10          # the watchdog fires this long after max_window
READY_TIMEOUT = 60          # seconds a restarted registry may take to answer
PROBE_PATH = "/v2/gcops-probe/manifests/gcops-probe"
CONFIG_SEPARATOR = "--- config (base64) ---"

EXIT_LOCKED = 75
EXIT_LEFTOVER = 76
EXIT_CONFIG_CHANGED = 77
EXIT_REFUSED = 78           # enter could not record its own state (space, permission): nothing changed
EXIT_LOCK_LOST = 50
EXIT_NO_RESTORE_SCRIPT = 37


def q(value: str) -> str:
    return shlex.quote(str(value))


def host_state_dir(config_path: str) -> str:
    return posixpath.join(posixpath.dirname(config_path) or "/", ".gcops")


@dataclass(frozen=True)
class NodePlan:
    """What the scripts need to know about one registry node and this run."""

    run_id: str
    owner: str                 # who holds the lock: "gcops@<control host> pid <pid> run <id>"
    config_path: str
    registry_url: str
    mode: str                  # "readonly" | "stop" | "concurrent"
    restart: str               # rendered playbook commands (already quoted)
    stop: str
    start: str
    gc: str                    # the GC command line (playbook's, with gcops' flags)
    max_window: float
    already_read_only: bool    # the config was read-only before the run
    ca_file: str = ""          # CA bundle on the host for an https registry_url
    gc_stop: str = ""          # ends a GC the stop of its client does not end (a container's `exec`)

    @property
    def state_dir(self) -> str:
        return host_state_dir(self.config_path)

    @property
    def url(self) -> str:
        return self.registry_url.rstrip("/")

    @property
    def host_mode(self) -> str:
        """How the node keeps writers out: "stop", or "readonly" (concurrent mode's window is read-only too)."""
        return "stop" if self.mode == "stop" else "readonly"


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def enter_command(plan: NodePlan, expected_sha256: str, write_config: bool, new_sha256: str = "") -> str:
    """Enter the window on one node (stdin: the read-only config bytes when `write_config`)."""
    restore, watchdog = scripts.text("restore"), scripts.text("watchdog")
    deadline = int(plan.max_window) + GRACE_SECONDS
    return scripts.command(
        "enter", f"d={plan.state_dir}", f"cfg={plan.config_path}", f"url={plan.url}", f"run={plan.run_id}",
        f"owner={plan.owner}", f"mode={plan.host_mode}", f"write={'yes' if write_config else 'no'}",
        f"expect={expected_sha256}", f"new_sha={new_sha256}", f"deadline={deadline}",
        f"restart={plan.restart}", f"stop={plan.stop}", f"start={plan.start}",
        f"already_ro={'yes' if plan.already_read_only else 'no'}", f"ca={plan.ca_file}", f"probe={PROBE_PATH}",
        f"gc_stop={plan.gc_stop}",
        f"restore_text={restore}", f"restore_sha={sha256_hex(restore)}",
        f"watchdog_text={watchdog}", f"watchdog_sha={sha256_hex(watchdog)}")


def gc_log(plan: NodePlan) -> str:
    return f"{plan.state_dir}/gc-{plan.run_id}.log"


def collect_command(plan: NodePlan, command: str, *, step: bool = False) -> str:
    """Run `command` inside the window while this run holds the lock, in a session restore.sh stops:
    the GC or another collector (output to the host's GC log), or with `step` a change to the storage
    (stdin passed on, output printed back when it ends)."""
    return scripts.command("gc", f"d={plan.state_dir}", f"run={plan.run_id}", f"gc={command}", f"log={gc_log(plan)}",
                           *(["step=yes"] if step else []))


def gc_wait_command(plan: NodePlan, seconds: int) -> str:
    """After a lost connection: wait up to `seconds` for this run's GC to end; prints gc_end/gc_exit."""
    return scripts.command("gc_wait", f"d={plan.state_dir}", f"run={plan.run_id}", f"seconds={int(seconds)}")


def gc_stop_command(plan: NodePlan) -> str:
    """Stop this run's GC (its process group) without leaving the window."""
    return scripts.command("gc_stop", f"d={plan.state_dir}", f"run={plan.run_id}")


def gc_log_command(plan: NodePlan) -> str:
    """Stream the GC log and remove it (after the window)."""
    return f"cat {q(gc_log(plan))} 2>/dev/null; rm -f {q(gc_log(plan))}"


def leave_command(plan: NodePlan) -> str:
    """Leave the window on one node: restore.sh and unlock, while this run holds the lock."""
    probe_gc = plan.host_mode == "readonly" and not plan.already_read_only
    return scripts.command("leave", f"d={plan.state_dir}", f"run={plan.run_id}",
                           f"probe_gc={'yes' if probe_gc else 'no'}")


def recover_command(config_path: str) -> str:
    """Restore with the host's own record (restore.sh) and unlock; exit 37 when there is no restore.sh."""
    return scripts.command("recover", f"d={host_state_dir(config_path)}")


def restore_bytes_command(config_path: str, sha256: str, service: str, registry_url: str, ca_file: str = "") -> str:
    """Write stdin (original config bytes) back, checked; run `service`; clear the host's marker and lock."""
    return scripts.command("restore_bytes", f"d={host_state_dir(config_path)}", f"cfg={config_path}",
                           f"sha={sha256}", f"service={service}", f"url={registry_url.rstrip('/')}",
                           f"ca={ca_file}")


def preflight_command(config_path: str, registry_url: str, registry_binary: str, ca_file: str = "") -> str:
    """Facts about the host as key=value lines, then the config in base64 after CONFIG_SEPARATOR."""
    return scripts.command("preflight", f"cfg={config_path}", f"url={registry_url.rstrip('/')}",
                           f"registry={registry_binary}", f"ca={ca_file}", f"probe={PROBE_PATH}")


def storage_check_command(storage_root: str, then: str = "") -> str:
    """Refuse a missing or database-owned storage (exit 10/11); on success run `then` (a built command)."""
    check = scripts.command("storage_check", storage_root)
    return f"{check} && {then}" if then else check
