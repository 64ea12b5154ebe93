"""One instance's maintenance cycle: preflight -> measure -> read-only (or stop) -> GC -> restore -> verify -> measure.

Every node that was entered is left again, whatever happens in between (GC
failure, max_window, SIGINT/SIGTERM, a dropped connection): `_leave_all` runs
in a `finally`. Before a node is touched, the intent is written locally
(journal.py) and on the host (hostside.py), and a watchdog on the host restores
it on its own if gcops cannot.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

import structlog

from gcops import hostside, journal, preflight
from gcops.config import Instance
from gcops.hosts import (Cancelled, CommandTimeout, ConnectionLost, Host, HostError, SSHSettings, connect)
from gcops.playbooks import render
from gcops.registry import storage
from gcops.registry.config_file import RegistryConfigError, with_read_only
from gcops.registry.gc_output import GCOutputParser, GCSummary
from gcops.registry.untagged import UntaggedScan
from gcops.retention import RetentionStep
from gcops.results import FAILED, NOT_RESTORED, OK, SKIPPED, InstanceResult

RECONNECT_ATTEMPTS = 3


def ssh_settings(instance: Instance) -> SSHSettings:
    return SSHSettings(user=instance.user, port=instance.port, identity_file=instance.identity_file,
                       known_hosts=instance.known_hosts, host_key_policy=instance.host_key_policy,
                       sudo=instance.sudo, connect_timeout=instance.connect_timeout)


@dataclass(frozen=True)
class RunOptions:
    mode: str
    delete_untagged: bool
    max_window: float
    retention: bool = True      # hook(retention): False with --no-retention


@dataclass
class Node:
    address: str
    host: Host | None = None
    facts: preflight.NodeFacts | None = None
    plan: hostside.NodePlan | None = None
    entered: bool = False
    left: bool = False
    window_start: float | None = None     # host clock
    window_end: float | None = None


def gc_command(instance: Instance, *, dry_run: bool = False) -> str:
    """The playbook's GC command with gcops' flags. --delete-untagged is never passed (see untagged.py)."""
    command = render(instance.playbook.commands["gc"], instance.vars)
    return command + (" --dry-run" if dry_run else "")


class InstanceCycle:
    """Run the whole cycle for one instance; `execute` always returns a result, never raises."""

    def __init__(self, instance: Instance, options: RunOptions, run_id: str, state_dir,
                 cancel: threading.Event, on_step: Callable[..., None] | None = None):
        self.instance = instance
        self.options = options
        self.run_id = run_id
        self.state_dir = state_dir
        self.cancel = cancel
        self.on_step = on_step or (lambda name, step, **fields: None)
        self.log = structlog.get_logger().bind(instance=instance.name, host=",".join(instance.hosts))
        self.nodes = [Node(address) for address in instance.hosts]
        self.result = InstanceResult(name=instance.name, hosts=list(instance.hosts),
                                     playbook=instance.playbook.name, mode=options.mode,
                                     delete_untagged=options.delete_untagged)
        self.gc_summary: GCSummary | None = None
        self.gc_started = False
        self.gc_exit: int | None = None
        self.window_opened = 0.0
        self.notes: list[str] = []       # what leaving the window found (read-only lost, not restored)
        self.untagged: UntaggedScan | None = None
        self.doomed: dict[str, set[str]] = {}
        self.untagged_deleted = 0
        self.retention: RetentionStep | None = None     # hook(retention)

    # -- the cycle ---------------------------------------------------------------------------
    def execute(self) -> InstanceResult:
        started = time.monotonic()
        try:
            self._connect()
            self._preflight()
            before = self._measured_before()
            self.result.storage_bytes_before = before.storage_bytes
            self.result.fs_used_bytes_before = before.fs_used_bytes
            self.result.blobs_before = before.blobs
            if self.options.delete_untagged and not self.nodes[0].facts.empty_storage:
                self._find_untagged()
            # hook(retention): plan before the window; an emptied repository refuses here, nothing touched
            if self.options.retention and self.instance.retention and not self.nodes[0].facts.empty_storage:
                self.retention = RetentionStep(self.instance.retention, self.log)
                self.retention.prepare(self.nodes[0].host, self.nodes[0].facts.storage_root,
                                       self.nodes[0].facts.registry.storage_driver)
            if self.nodes[0].facts.empty_storage:
                self._step("nothing_to_do", host=self.nodes[0].address, reason="no repositories in the storage")
                self.result.window_seconds = 0.0
                self.result.blobs_deleted = self.result.manifests_deleted = 0
            else:
                self._window()
            after = self._measure("measure_after")
            self.result.storage_bytes_after = after.storage_bytes
            self.result.fs_used_bytes_after = after.fs_used_bytes
            self.result.blobs_after = after.blobs
            self.result.reclaimed_bytes = before.storage_bytes - after.storage_bytes
            if self.result.status == SKIPPED:
                self.result.status = OK
            if self.notes:
                self.result.error = "; ".join(self.notes)
        except preflight.LockHeld as exc:
            self._finish_error(SKIPPED, f"locked: {exc}", lock_held=True)
        except preflight.Refused as exc:
            self._finish_error(SKIPPED, f"refused: {exc}")
        except Cancelled:
            self._finish_error(FAILED, "interrupted (SIGINT/SIGTERM)", interrupted=True)
        except _WindowFailed as exc:
            self._finish_error(FAILED, str(exc))
        except HostError as exc:
            self._finish_error(FAILED, str(exc))
        except Exception as exc:  # a bug must not leave a registry changed, nor hide
            self.log.exception("unexpected_error")
            self._finish_error(FAILED, f"{type(exc).__name__}: {exc}")
        finally:
            self.result.duration_seconds = time.monotonic() - started
            for node in self.nodes:
                if node.host is not None:
                    node.host.close()
        self.on_step(self.instance.name, self.result.status, reclaimed_bytes=self.result.reclaimed_bytes)
        return self.result

    def _finish_error(self, status: str, error: str, *, lock_held: bool = False, interrupted: bool = False):
        if self.result.status != NOT_RESTORED:
            self.result.status = status
        self.result.error = "; ".join([error] + [n for n in self.notes if n != error])
        self.result.lock_held = self.result.lock_held or lock_held
        self.result.interrupted = self.result.interrupted or interrupted
        self.log.warning("instance_failed", status=self.result.status, error=self.result.error)

    def _step(self, step: str, **fields) -> None:
        self.on_step(self.instance.name, step)
        self.log.info(step, **fields)

    # -- steps ---------------------------------------------------------------------------------
    def _connect(self) -> None:
        settings = ssh_settings(self.instance)
        for node in self.nodes:
            self._step("connect", host=node.address)
            node.host = connect(node.address, settings)

    def _preflight(self) -> None:
        for node in self.nodes:
            self._step("preflight", host=node.address)
            # the GC node's storage is measured in the same round trip as its storage check
            node.facts = preflight.gather(node.host, self.instance.vars, measure=node is self.nodes[0])
            checks = preflight.evaluate(node.facts, self.instance.vars, self.options.mode)
            preflight.refuse_unless_safe(checks)
            if node.facts.leftover or node.facts.lock is not None:
                self._recover_leftover(node)
        roots = {n.facts.storage_root for n in self.nodes}
        if len(roots) != 1:
            raise preflight.Refused(f"nodes disagree on the storage root: {sorted(roots)}")

    def _recover_leftover(self, node: Node) -> None:
        """An earlier run left this node changed and its lock is abandoned: restore first."""
        self._step("recover_leftover", host=node.address, marker=node.facts.leftover)
        if node.facts.kv.get("restore_script") != "yes":
            raise preflight.Refused(f"{node.address}: changes left by an earlier run and no restore script; "
                                    "run `gcops recover`")
        result = node.host.run(f"/bin/sh {hostside.q(hostside.host_state_dir(self.instance.vars['config']) + '/restore.sh')}"
                               f" recover && rm -rf {hostside.q(hostside.host_state_dir(self.instance.vars['config']) + '/lock')}",
                               timeout=600, check=False)
        if result.exit_code != 0:
            raise preflight.Refused(f"{node.address}: could not restore what an earlier run left: "
                                    f"{result.text.strip().splitlines()[-1:]}; run `gcops recover`")
        node.facts = preflight.gather(node.host, self.instance.vars, measure=node is self.nodes[0])
        preflight.refuse_unless_safe(preflight.evaluate(node.facts, self.instance.vars, self.options.mode))

    def _measured_before(self) -> storage.StorageSnapshot:
        node = self.nodes[0]
        snap = node.facts.snapshot
        self.on_step(self.instance.name, "measure_before", storage_bytes=snap.storage_bytes)
        self.log.info("measure_before_done", host=node.address, storage_bytes=snap.storage_bytes,
                      blobs=snap.blobs, fs_used_bytes=snap.fs_used_bytes)
        return snap

    def _measure(self, step: str) -> storage.StorageSnapshot:
        node = self.nodes[0]
        self._step(step, host=node.address)
        t0 = time.monotonic()
        out = node.host.run(storage.measure_command(node.facts.storage_root), timeout=None).text
        snap = storage.parse_measurement(out)
        self.on_step(self.instance.name, step, storage_bytes=snap.storage_bytes)
        self.log.info(f"{step}_done", host=node.address, storage_bytes=snap.storage_bytes,
                      blobs=snap.blobs, fs_used_bytes=snap.fs_used_bytes, seconds=round(time.monotonic() - t0, 3))
        return snap

    # -- the window --------------------------------------------------------------------------
    def _plan_for(self, node: Node) -> hostside.NodePlan:
        cmds, vars = self.instance.playbook.commands, self.instance.vars
        return hostside.NodePlan(
            run_id=self.run_id, owner=f"gcops@{socket.gethostname()} pid {os.getpid()} run {self.run_id}",
            config_path=vars["config"], registry_url=vars["registry_url"], mode=self.options.mode,
            restart=render(cmds["restart"], vars), stop=render(cmds["stop"], vars),
            start=render(cmds["start"], vars), gc=gc_command(self.instance), max_window=self.options.max_window,
            already_read_only=node.facts.registry.read_only)

    def _window(self) -> None:
        """Every node read-only (or stopped) and verified, GC on the first, every node restored.

        The GC node's enter -> verify -> GC -> restore runs as one host-side
        script (one round trip, GC output to a host file); the other nodes of
        an HA instance are entered and verified before it and left after it.
        """
        for node in self.nodes:
            node.plan = self._plan_for(node)
        self.window_opened = time.monotonic()
        first = self.nodes[0]
        try:
            for node in self.nodes[1:]:
                self._check_cancel()
                self._enter(node)
                self._verify_window(node)
            self._check_cancel()
            if self.doomed or (self.retention and self.retention.planned):   # hook(retention)
                self._enter(first)
                if self.retention and self.retention.planned:
                    self._apply_retention(first)
                if self.doomed:
                    self._delete_untagged(first)
                self._run_window(first, enter=False)
            else:
                self._run_window(first, enter=True)
        finally:
            self._leave_all()
        self._collect_gc_output(first)
        if self.notes:
            raise _WindowFailed(self.notes.pop(0))

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("interrupted before the window")

    def _find_untagged(self) -> None:
        """Before the window (writes still accepted): candidates from the storage itself."""
        node = self.nodes[0]
        self._step("find_untagged", host=node.address)
        self.untagged = UntaggedScan(node.host, node.facts.storage_root)
        self.doomed = self.untagged.find()
        self.log.info("untagged_found", host=node.address, repositories=len(self.doomed),
                      manifests=sum(len(d) for d in self.doomed.values()))

    def _verify_window(self, node: Node) -> None:
        """Writes refused (or registry down) on this node, or no GC anywhere."""
        check = node.host.run(hostside.window_check_script(node.plan), timeout=60, check=False)
        if check.exit_code != 0:
            raise _WindowFailed(f"{node.address}: the window does not hold, so nothing was collected "
                                f"({_last(check)})")

    def _delete_untagged(self, node: Node) -> None:
        """Inside the window: re-check against the tags of now, then remove the revision links."""
        self._step("delete_untagged", host=node.address)
        self._verify_window(node)
        doomed = self.untagged.recheck(self.doomed)
        self.untagged_deleted = self.untagged.delete(doomed)
        self.log.info("untagged_deleted", host=node.address, manifests=self.untagged_deleted,
                      spared=sum(len(d) for d in self.doomed.values()) - sum(len(d) for d in doomed.values()))

    def _apply_retention(self, node: Node) -> None:   # hook(retention)
        """Inside the window, before GC: delete the planned tags (re-checked), unlink what they leave untagged."""
        self._step("retention", host=node.address)
        self._verify_window(node)
        try:
            self.retention.apply(node.host, node.facts.storage_root)
        finally:   # tags already deleted are recorded even if unlinking what they left fails
            self.result.tags_deleted = self.retention.deleted

    def _prepare_enter(self, node: Node) -> tuple[bool, bytes]:
        """The read-only config bytes, and the intent written locally, before the host is touched."""
        plan, facts = node.plan, node.facts
        write_config = plan.mode == "readonly" and not plan.already_read_only
        new_config = b""
        if write_config:
            try:
                new_config = with_read_only(facts.config_bytes)
            except RegistryConfigError as exc:
                raise preflight.Refused(f"{node.address}: {plan.config_path}: {exc}") from exc
        journal.write_intent(self.state_dir, journal.Intent(
            run_id=self.run_id, instance=self.instance.name, node=node.address, config_path=plan.config_path,
            registry_url=plan.registry_url, mode=plan.mode, restart=plan.restart, start=plan.start,
            already_read_only=plan.already_read_only,
            original_b64=base64.b64encode(facts.config_bytes).decode("ascii"),
            original_sha256=hashlib.sha256(facts.config_bytes).hexdigest()))
        self._step("enter_read_only" if plan.mode == "readonly" else "stop_registry", host=node.address)
        node.entered = True
        return write_config, new_config

    def _entered(self, node: Node, code: int, kv: dict[str, str], write_config: bool) -> None:
        """Judge an enter step's outcome: refusals that changed nothing, the window start."""
        if code in (hostside.EXIT_LOCKED, hostside.EXIT_LEFTOVER, hostside.EXIT_CONFIG_CHANGED):
            node.entered = False   # the script released its lock and changed nothing
            journal.remove_intent(self.state_dir, self.instance.name, node.address)
            if code == hostside.EXIT_LOCKED:
                raise preflight.LockHeld(f"{node.address}: held by {kv.get('lock_held', 'another run')}")
            if code == hostside.EXIT_LEFTOVER:
                raise preflight.Refused(f"{node.address}: changes left by {kv.get('leftover')}; run `gcops recover`")
            raise preflight.Refused(f"{node.address}: {node.plan.config_path} changed since preflight; try again")
        if "window_start" in kv and (write_config or node.plan.mode == "stop"):
            node.window_start = _float(kv.get("window_start"))

    def _enter(self, node: Node) -> None:
        """Enter the window on one node in its own round trip (HA nodes, --delete-untagged)."""
        write_config, new_config = self._prepare_enter(node)
        script = hostside.enter_script(node.plan, node.facts.kv.get("config_sha256", ""), write_config)
        result = node.host.run(script, input=new_config if write_config else None,
                               timeout=hostside.READY_TIMEOUT * 2 + 60, check=False)
        kv = hostside.parse_kv(result.text)
        self._entered(node, result.exit_code, kv, write_config)
        if result.exit_code != 0:
            raise _WindowFailed(f"{node.address}: entering {'read-only' if node.plan.mode == 'readonly' else 'stop'} "
                                f"failed (exit {result.exit_code}): {_last(result)}")
        self.log.info("entered", host=node.address, watchdog=kv.get("watchdog"),
                      seconds=_span(kv.get("window_start"), kv.get("ready")))

    def _run_window(self, node: Node, *, enter: bool) -> None:
        """[enter ->] verify -> GC -> leave on the GC node, as one host-side script."""
        write_config, new_config = self._prepare_enter(node) if enter else (False, b"")
        self._step("gc", host=node.address)
        script = hostside.window_script(node.plan, enter=enter, write_config=write_config,
                                        expected_sha256=node.facts.kv.get("config_sha256", ""))
        lines: list[str] = []
        t0 = time.monotonic()
        try:
            code, tail = node.host.stream(script, lines.append, input=new_config if write_config else None,
                                          deadline=self.window_opened + self.options.max_window,
                                          cancel=self.cancel)
        except CommandTimeout as exc:
            self.gc_started = True
            raise _WindowFailed(f"GC ran past max_window ({self.options.max_window:g}s); stopped and restored") from exc
        kv = hostside.parse_kv("\n".join(lines))   # a few dozen lines: the GC's own output went to a host file
        if enter:
            self._entered(node, code, kv, write_config)
        self.result.gc_seconds = _span(kv.get("gc_start"), kv.get("gc_end")) or (time.monotonic() - t0)
        if "enter_exit" in kv:
            self._left(node, kv, int(kv.get("leave_exit", "1")), lines)
            raise _WindowFailed(f"{node.address}: entering {'read-only' if node.plan.mode == 'readonly' else 'stop'} "
                                f"failed (exit {kv['enter_exit']}): {_tail(lines)}")
        self.gc_started = "gc_exit" in kv
        if "leave_exit" in kv:
            self._left(node, kv, int(kv["leave_exit"]), lines)
        if "check_exit" in kv:
            what = ("registry did not refuse writes" if kv["check_exit"] == str(hostside.EXIT_NOT_READ_ONLY)
                    else "the window does not hold")
            raise _WindowFailed(f"{node.address}: {what}; GC not run ({_tail(lines)})")
        if "gc_exit" not in kv:
            raise _WindowFailed(f"{node.address}: the window script ended early (exit {code}): {_tail(lines)}")
        self.gc_exit = int(kv["gc_exit"])

    def _collect_gc_output(self, node: Node) -> None:
        """After the window: stream the GC's log from the host through the parser (constant memory)."""
        if not self.gc_started:
            return
        parser = GCOutputParser()
        try:
            code, tail = node.host.stream(hostside.gc_log_command(node.plan), parser.feed, cancel=None)
        except HostError as exc:
            self.notes.append(f"{node.address}: GC output could not be read: {exc}")
            return
        summary = self.gc_summary = parser.finish()
        if self.gc_exit not in (None, 0):
            self.notes.insert(0, f"{node.address}: GC exited {self.gc_exit}: {_tail(tail)}")
            return
        if self.gc_exit is None:
            return
        self.result.blobs_deleted = summary.blobs_removed
        self.result.manifests_deleted = (summary.manifests_removed + self.untagged_deleted
                                         + (self.retention.manifests_deleted if self.retention else 0))  # hook(retention)
        self.log.info("gc_done", host=node.address, blobs_deleted=self.result.blobs_deleted,
                      manifests_deleted=self.result.manifests_deleted, lines=summary.lines,
                      seconds=round(self.result.gc_seconds or 0, 3))

    def _leave_all(self) -> None:
        for node in reversed(self.nodes):
            if node.entered and not node.left:
                self._leave(node)
        starts = [n.window_start for n in self.nodes if n.window_start is not None]
        ends = [n.window_end for n in self.nodes if n.window_end is not None]
        if starts and ends:
            self.result.window_seconds = max(0.0, max(ends) - min(starts))
        elif not starts:
            self.result.window_seconds = 0.0

    def _leave(self, node: Node) -> None:
        self._step("restore", host=node.address)
        script = hostside.leave_script(node.plan)
        last_error = None
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                if attempt:
                    node.host.close()
                    node.host = connect(node.address, ssh_settings(self.instance))
                result = node.host.run(script, timeout=hostside.READY_TIMEOUT * 2 + 120, check=False)
                break
            except (ConnectionLost, HostError) as exc:
                last_error = exc
                self.log.warning("restore_retry", host=node.address, attempt=attempt + 1, error=str(exc))
                time.sleep(min(5, 1 + attempt * 2))
        else:
            self._not_restored(node, f"cannot reach the host to restore: {last_error}; its watchdog restores "
                                     f"it after max_window, or run `gcops recover`")
            return
        self._left(node, hostside.parse_kv(result.text), result.exit_code, result.text.splitlines())

    def _left(self, node: Node, kv: dict[str, str], code: int, lines: list[str]) -> None:
        """Judge a leave step's outcome (restore.sh exit code and its key=value lines)."""
        if code != 0:
            self._not_restored(node, f"restore failed (exit {code}): {_tail(lines)}")
            return
        node.left = True
        if kv.get("not_ours") == "yes":
            return      # restored earlier (by gcops' own leave after a timeout, the watchdog, or recover)
        node.window_end = _float(kv.get("window_end"))
        journal.remove_intent(self.state_dir, self.instance.name, node.address)
        lost = node.plan.mode == "readonly" and kv.get("probe_after_gc") not in (None, "405", "401")
        if lost and self.gc_started:
            self.notes.append(f"{node.address}: read-only was LOST during GC (write probe answered "
                              f"{kv.get('probe_after_gc')}): was `gitlab-ctl reconfigure` run? Check the "
                              "registry and its storage")
        self.log.info("restored", host=node.address, probe_after=kv.get("probe_after"))

    def _not_restored(self, node: Node, error: str) -> None:
        self.result.status = NOT_RESTORED
        self.notes.append(f"{node.address}: NOT RESTORED: {error}")
        self.log.error("not_restored", host=node.address, error=error)


class _WindowFailed(Exception):
    """The window went wrong; every node has been left (restored) by then."""


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _span(a: str | None, b: str | None) -> float | None:
    fa, fb = _float(a), _float(b)
    return round(fb - fa, 3) if fa is not None and fb is not None else None


def _last(result) -> str:
    lines = (result.text + "\n" + result.stderr.decode("utf-8", "replace")).strip().splitlines()
    return " | ".join(lines[-3:]) if lines else "no output"


def _tail(lines: list[str]) -> str:
    picked = [line for line in lines if line.strip()][-3:]
    return " | ".join(picked) if picked else "no output"
