"""One registry node in the window: its plan, and the round trips that enter, verify and leave it.

Each function changes one node and says what happened as a typed outcome;
`WindowFailed` means the window cannot go on (the caller leaves every entered
node), `NodeRefused` that the node refused before changing anything.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from dataclasses import dataclass, field
from enum import Enum


from gcops import hostside
from gcops.state import journal
from gcops.maintenance import preflight
from gcops.maintenance import guards
from gcops.storage import s3
from gcops.config import Instance
from gcops.containers.resolve import restarted_since_resolved
from gcops.errors import LockHeld, Refused, WindowFailed
from gcops.hostside import outcomes
from gcops.transport.hosts import Host, HostError, SSHSettings, connect
from gcops.playbooks import render
from gcops.registry.config_file import RegistryConfigError, with_read_only

RECONNECT_ATTEMPTS = 3
ENTER_TIMEOUT = hostside.READY_TIMEOUT * 2 + 60
LEAVE_TIMEOUT = hostside.READY_TIMEOUT * 2 + 120


def ssh_settings(instance: Instance) -> SSHSettings:
    return SSHSettings(user=instance.user, port=instance.port, identity_file=instance.identity_file,
                       known_hosts=instance.known_hosts, host_key_policy=instance.host_key_policy,
                       sudo=instance.sudo, connect_timeout=instance.connect_timeout,
                       config_file=instance.ssh_config_file, explicit=instance.ssh_explicit)


def gc_command(instance: Instance, *, dry_run: bool = False) -> str:
    """The playbook's GC command with gcops' flags. --delete-untagged is never passed (see untagged.py)."""
    command = render(instance.playbook.commands["gc"], instance.vars)
    return command + (" --dry-run" if dry_run else "")


class NodeState(Enum):
    """Where one node stands in this run's window."""

    UNTOUCHED = "untouched"        # nothing of this run changed it
    ENTERED = "entered"            # a leave is owed, whatever the host said
    LEFT = "left"                  # restored, verified and unlocked
    NOT_RESTORED = "not_restored"  # leaving failed: its watchdog or `gcops recover` must restore it


@dataclass
class Node:
    address: str
    host: Host | None = None
    facts: preflight.NodeFacts | None = None
    plan: hostside.NodePlan | None = None
    state: NodeState = NodeState.UNTOUCHED
    verified: bool | None = None          # writes refused proven by a 405 (None: not checked)
    window_start: float | None = None     # host clock
    service_seconds: float | None = None  # how long entering took the registry (restart or stop), host clock
    window_end: float | None = None
    notes: list[str] = field(default_factory=list)       # what went wrong on this node (the run fails)
    warnings: list[str] = field(default_factory=list)    # what the admin must know (the run may succeed)

    @property
    def entered(self) -> bool:
        return self.state is not NodeState.UNTOUCHED

    @entered.setter
    def entered(self, value: bool) -> None:
        self.state = NodeState.ENTERED if value else NodeState.UNTOUCHED

    @property
    def left(self) -> bool:
        return self.state is NodeState.LEFT

    @left.setter
    def left(self, value: bool) -> None:
        if value:
            self.state = NodeState.LEFT

    def not_restored(self, reason: str) -> None:
        """Leaving failed: the run ends not_restored, with `reason` in its error."""
        self.state = NodeState.NOT_RESTORED
        self.notes.append(f"{self.address}: NOT RESTORED: {reason}")

    def reconnect(self, instance: Instance) -> Host:
        """A new connection to this node (the old one closed first); the one place gcops reconnects.
        Raises HostError."""
        if self.host is not None:
            self.host.close()
        self.host = None
        self.host = connect(self.address, ssh_settings(instance))
        return self.host


def plan_for(instance: Instance, node: Node, mode: str, run_id: str, max_window: float) -> hostside.NodePlan:
    cmds, vars = instance.playbook.commands, instance.vars
    return hostside.NodePlan(
        run_id=run_id, owner=f"gcops@{socket.gethostname()} pid {os.getpid()} run {run_id}",
        config_path=vars["config"], registry_url=vars["registry_url"], mode=mode,
        restart=render(cmds["restart"], vars), stop=render(cmds["stop"], vars),
        start=render(cmds["start"], vars), gc=gc_command(instance), max_window=max_window,
        already_read_only=node.facts.registry.read_only, ca_file=vars.get("registry_ca_file", ""),
        gc_stop=render(cmds["gc_stop"], vars) if "gc_stop" in cmds else "")


def read_only_bytes(node: Node) -> bytes | None:
    """The config bytes to write for the window, or None when nothing is written (stop, already read-only)."""
    plan, facts = node.plan, node.facts
    if plan.host_mode != "readonly" or plan.already_read_only:
        return None
    try:
        return with_read_only(facts.config_bytes)
    except RegistryConfigError as exc:
        raise Refused(f"{node.address}: {plan.config_path}: {exc}") from exc


def enter_command_for(node: Node) -> tuple[str, bytes | None]:
    """The enter command and its stdin, exactly as `enter` sends them (dry-run prints them too)."""
    new = read_only_bytes(node)
    command = hostside.enter_command(node.plan, node.facts.kv.get("config_sha256", ""), new is not None,
                                     hashlib.sha256(new).hexdigest() if new is not None else "")
    return command, new


def _write_intent(state_dir, node: Node, instance_name: str) -> None:
    """The local journal's intent for this node, before the host is changed. Raises OSError."""
    plan, facts = node.plan, node.facts
    journal.write_intent(state_dir, journal.Intent(
        run_id=plan.run_id, instance=instance_name, node=node.address, config_path=plan.config_path,
        registry_url=plan.registry_url, mode=plan.host_mode, restart=plan.restart, start=plan.start,
        already_read_only=plan.already_read_only, ca_file=plan.ca_file,
        # a config holding an S3 secret key is kept on the host only, not in gcops' state dir
        original_b64=base64.b64encode(facts.config_bytes).decode("ascii") if s3.journal_safe(facts.config_bytes)
        else "",
        original_sha256=hashlib.sha256(facts.config_bytes).hexdigest()))


def enter(node: Node, instance_name: str, state_dir, log) -> outcomes.EnterOutcome:
    """Lock, intent (locally first, then on the host), watchdog, read-only or stop. Raises Refused/LockHeld
    when the host refused before changing anything, WindowFailed when entering failed after a change."""
    plan = node.plan
    command, new = enter_command_for(node)
    try:
        _write_intent(state_dir, node, instance_name)
    except OSError as exc:      # before anything changed on the host: refused, nothing to restore
        raise Refused(f"{node.address}: cannot write the intent to the local journal in {state_dir}: "
                      f"{exc.strerror or exc}") from exc

    node.entered = True       # from here on a leave is owed, whatever the host says
    result = node.host.run(command, input=new, timeout=ENTER_TIMEOUT, check=False)
    outcome = outcomes.parse_enter(result.exit_code, result.text)
    if outcome.changed_nothing:
        node.entered = False
        journal.remove_intent(state_dir, instance_name, node.address, plan.run_id)
        if outcome.locked_by is not None or outcome.code == hostside.EXIT_LOCKED:
            raise LockHeld(f"{node.address}: {outcome.reason}")
        raise Refused(f"{node.address}: {outcome.reason}")
    if outcome.window_start is not None and (new is not None or plan.host_mode == "stop"):
        node.window_start = outcome.window_start
        if outcome.ready is not None:
            node.service_seconds = max(0.0, outcome.ready - outcome.window_start)
    if not outcome.entered:
        what = "read-only" if plan.host_mode == "readonly" else "stop"
        raise WindowFailed(f"{node.address}: entering {what} failed (enter.sh exited {outcome.code}): "
                           f"{outcome.reason}")
    log.info("entered", host=node.address, watchdog=outcome.kv.get("watchdog"), stage=outcome.kv.get("stage"),
             restarted=outcome.restarted,
             seconds=round(outcome.ready - outcome.window_start, 3) if outcome.ready and outcome.window_start else None)
    return outcome


def verify(node: Node, entered: outcomes.EnterOutcome, instance: Instance | None = None) -> None:
    """Writes refused (405) and reads answered, or the registry down in stop mode; else WindowFailed.

    Behind authentication (401/403 to the anonymous probe), GC is allowed only when the
    registry process demonstrably restarted with the read-only config; `node.verified` is then False.
    """
    check = outcomes.parse_check(entered.text)     # enter.sh checks in its own round trip
    if node.plan.host_mode == "stop":
        if check.answering:
            raise WindowFailed(f"{node.address}: the registry still answers after stop; GC not run")
        node.verified = True
        return
    if check.tls_problem:
        raise WindowFailed(f"{node.address}: TLS certificate problem reaching {node.plan.url} (curl exit "
                           f"{check.curl_rc}); set vars.registry_ca_file to the CA bundle on the host; GC not run")
    if not check.answering:
        raise WindowFailed(f"{node.address}: the registry does not answer reads (GET /v2/ {check.read_status}); "
                           "GC not run")
    if check.refuses_writes:
        node.verified = True
        return
    if check.needs_credentials and instance is not None and instance.probe is not None:
        verdict = guards.prove_read_only(node.host, node.plan.url, instance.probe, instance=instance.name,
                                                host_ca_file=node.plan.ca_file)
        if not verdict.ok_to_collect:
            raise WindowFailed(f"{node.address}: {verdict.reason}")
        node.verified = True
        return
    if check.needs_credentials:
        proof = entered.restarted == "yes" if not node.plan.already_read_only else entered.fresh == "yes"
        if not proof and not node.plan.already_read_only and instance is not None and instance.container is not None:
            # the registry runs in another process namespace: the engine says whether its container restarted
            # (the restart comes after the read-only config was written)
            proof = restarted_since_resolved(instance, node.host)
        if proof:
            node.verified = False
            node.warnings.append(f"{node.address}: read-only NOT verified (the registry wants credentials for the "
                              f"write probe, {check.write_status}); accepted because the registry process "
                              "restarted with the read-only config. Set [instance.probe] to verify it")
            return
        raise WindowFailed(f"{node.address}: the write probe needs credentials ({check.write_status}) and the "
                           "registry process did not demonstrably restart with the read-only config "
                           f"(restarted: {entered.restarted}); GC not run")
    raise WindowFailed(f"{node.address}: the registry is NOT read-only (write probe answered "
                       f"{check.write_status}); GC not run")


def leave(node: Node, instance: Instance, state_dir, log) -> outcomes.LeaveOutcome | None:
    """restore.sh and unlock, retrying over a new connection; None when the host could not be reached."""
    last_error: Exception | None = None
    for attempt in range(RECONNECT_ATTEMPTS):
        try:
            if attempt or node.host is None:
                node.reconnect(instance)
            result = node.host.run(hostside.leave_command(node.plan), timeout=LEAVE_TIMEOUT, check=False)
            break
        except HostError as exc:
            last_error = exc
            log.warning("restore_retry", host=node.address, attempt=attempt + 1, error=str(exc))
            time.sleep(min(5, 1 + attempt * 2))
    else:
        node.not_restored(f"cannot reach the host to restore: {last_error}; its watchdog restores it after "
                          "max_window, or run `gcops recover`")
        return None
    outcome = outcomes.parse_leave(result.exit_code, result.text)
    if not outcome.restored:
        node.not_restored(outcome.reason)
        return outcome
    node.left = True
    lost = outcome.probe_after_gc not in (None, "405", "401", "403")
    if lost and node.verified is not None:
        node.notes.append(f"{node.address}: read-only was LOST during the window (write probe answered "
                          f"{outcome.probe_after_gc}): was `gitlab-ctl reconfigure` run? Check the registry "
                          "and its storage")
    try:
        journal.remove_intent(state_dir, instance.name, node.address, node.plan.run_id)
    except OSError as exc:      # the registry is restored; the leftover intent only makes recover look again
        log.warning("journal_intent_left", host=node.address, error=str(exc))
    node.window_end = outcome.window_end
    log.info("restored", host=node.address, by=outcome.kv.get("restored_by") or outcome.kv.get("restore_by"),
             probe_after=outcome.kv.get("probe_after"))
    return outcome
