"""One instance's whole cycle, top-down in `InstanceCycle.execute`; it always returns a result, never raises."""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import structlog

from gcops import hostside
from gcops.containers import resolve as containers
from gcops.maintenance import preflight
from gcops.config import Instance
from gcops.hostside import recover_command
from gcops.errors import Cancelled, GcopsError, HostError, LockHeld, Refused, WindowFailed
from gcops.transport.hosts import connect
from gcops.maintenance import guards
from gcops.maintenance.container_check import StillSameContainer
from gcops.maintenance.caches import RedisDescriptorPurge
from gcops.maintenance.collect import Collected, RegistryGC, UntaggedRemoval
from gcops.maintenance.concurrent import ConcurrentGC
from gcops.maintenance.in_window import InWindow, run_step
from gcops.maintenance.node import Node, NodeState, plan_for, ssh_settings
from gcops.maintenance.window import Window
from gcops.storage import s3
from gcops.storage import filesystem
from gcops.registry.config_file import RegistryConfigError
from gcops.retention import RetentionStep
from gcops.state.step_figures import StepStatus
from gcops.state.results import FAILED, NOT_RESTORED, OK, SKIPPED, InstanceResult


@dataclass(frozen=True)
class RunOptions:
    mode: str
    delete_untagged: bool
    max_window: float
    retention: bool = True      # False with --no-retention


class InstanceCycle:
    """connect -> preflight -> measure -> prepare -> window (steps, collect) -> measure -> result."""

    def __init__(self, instance: Instance, options: RunOptions, run_id: str, state_dir,
                 cancel: threading.Event, on_step: Callable[..., None] | None = None):
        self.instance, self.options, self.run_id, self.state_dir = instance, options, run_id, state_dir
        self.cancel = cancel
        self.on_step = on_step or (lambda name, step, **fields: None)
        self.log = structlog.get_logger().bind(instance=instance.name, host=",".join(instance.hosts))
        self.nodes = [Node(address) for address in instance.hosts]
        self.result = InstanceResult(name=instance.name, hosts=list(instance.hosts),
                                     playbook=instance.playbook.name, mode=options.mode,
                                     delete_untagged=options.delete_untagged)
        self.collector = self._collector()
        self.collected = Collected()
        self.steps: list = []          # inside the window, before the collector (apply(node))
        self.after_steps: list = []    # inside the window, after it (apply_after(node, collected)): caches
        self.window: Window | None = None
        self.notes: list[str] = []

    def _collector(self):
        """--mode concurrent marks before the window and sweeps inside it; else the registry's own GC."""
        if self.options.mode == "concurrent":
            return ConcurrentGC(self.instance, self.log, run_id=self.run_id, cancel=self.cancel)
        return RegistryGC(self.instance, self.log)

    @property
    def gc_node(self) -> Node:
        return self.nodes[0]

    def execute(self) -> InstanceResult:
        started = time.monotonic()
        before = None
        try:
            self._connect()
            self._preflight()
            before = self._measured_before()
            if self.gc_node.facts.empty_storage:
                self._step("nothing_to_do", reason="no repositories in the storage")
                self.result.window_seconds = 0.0
                self.result.blobs_deleted = self.result.manifests_deleted = 0
            else:
                self._prepare()
                self._window()
            self.result.status = OK
        except LockHeld as exc:
            self._fail(SKIPPED, f"locked: {exc}", lock_held=True)
        except Refused as exc:
            self._fail(SKIPPED, f"refused: {exc}")
        except Cancelled:
            self._fail(FAILED, "interrupted (SIGINT/SIGTERM)", interrupted=True)
        except GcopsError as exc:   # a bug is not caught: the window has left every node; the CLI names it
            self._fail(FAILED, str(exc))
        finally:
            if isinstance(self.collector, ConcurrentGC):   # marker and work dir go
                self.collector.cleanup(self.gc_node)
            self._settle(before)
            self.result.duration_seconds = time.monotonic() - started
            for node in self.nodes:
                if node.host is not None:
                    node.host.close()
        self.on_step(self.instance.name, self.result.status, reclaimed_bytes=self.result.reclaimed_bytes)
        return self.result

    # -- before the window ---------------------------------------------------------------------
    def _connect(self) -> None:
        settings = ssh_settings(self.instance)
        for node in self.nodes:
            self._step("connect", host=node.address)
            node.host = connect(node.address, settings)

    def _preflight(self) -> None:
        if self.instance.container is not None:   # the engine says where things are on its host
            self._step("inspect_container", host=self.gc_node.address)
            self.instance = containers.resolve(self.instance, self.gc_node.host, self.options.mode)
            self.collector = self._collector()
            self.steps.append(StillSameContainer(self.instance))
        for node in self.nodes:
            self._step("preflight", host=node.address)
            # the GC node's storage is measured in the same round trip as its storage check
            node.facts = preflight.gather(node.host, self.instance.vars, measure=node is self.gc_node,
                                          s3_overrides=self.instance.s3,
                                          on_progress=self._measure_progress("measure_before"),
                                          registry_env=containers.registry_env_of(self.instance))
            if node is self.gc_node and node.facts.registry is not None:   # known even when refused
                self.result.storage_driver = node.facts.registry.storage_driver
            preflight.refuse_unless_safe(preflight.evaluate(node.facts, self.instance.vars))
            if node is self.gc_node and node.facts.bucket is not None and self.options.delete_untagged:
                raise Refused(s3.DELETE_UNTAGGED_REFUSED)
            if node.facts.leftover or node.facts.lock is not None:
                self._recover_leftover(node)
        roots = {n.facts.storage_root for n in self.nodes}
        if len(roots) != 1:
            raise Refused(f"nodes disagree on the storage root: {sorted(roots)}")

    def _recover_leftover(self, node: Node) -> None:
        """An earlier run left this node changed and its lock is abandoned: restore first, then look again."""
        self._step("recover_leftover", host=node.address, marker=node.facts.leftover)
        result = node.host.run(recover_command(self.instance.vars["config"]), timeout=600, check=False)
        if result.exit_code != 0:
            lines = [line for line in result.text.splitlines() if line.strip()][-2:]
            raise Refused(f"{node.address}: could not restore what an earlier run left "
                                    f"({' | '.join(lines) or f'exit {result.exit_code}'}); run `gcops recover`")
        node.facts = preflight.gather(node.host, self.instance.vars, measure=node is self.gc_node,
                                      s3_overrides=self.instance.s3,
                                      registry_env=containers.registry_env_of(self.instance))
        preflight.refuse_unless_safe(preflight.evaluate(node.facts, self.instance.vars))

    def _measured_before(self) -> filesystem.StorageSnapshot:
        snap = self.gc_node.facts.snapshot
        self._record_snapshot(snap, "before")
        self.on_step(self.instance.name, "measure_before", storage_bytes=snap.storage_bytes)
        self.log.info("measure_before_done", host=self.gc_node.address, storage_bytes=snap.storage_bytes,
                      blobs=snap.blobs, fs_used_bytes=snap.fs_used_bytes)
        return snap

    def _prepare(self) -> None:
        """Work done while writes are still accepted: finding what the window will remove."""
        if self.options.retention and self.instance.retention:   # may refuse, nothing touched
            self._step("plan_retention", host=self.gc_node.address)
            retention = RetentionStep(self.instance.retention, self.log)
            retention.prepare(self.gc_node.host, self.gc_node.facts.storage_root,
                              self.gc_node.facts.registry.storage_driver)
            self.steps.append(retention)
        if self.options.delete_untagged:
            self._step("find_untagged", host=self.gc_node.address)
            untagged = UntaggedRemoval(self.gc_node, self.log)
            untagged.prepare()
            self.steps.append(untagged)
        try:  # a Redis descriptor cache is purged after GC; one gcops cannot purge refuses the run
            redis = guards.redis_settings_of(self.gc_node.facts.effective_config)
        except RegistryConfigError as exc:
            raise Refused(f"{self.gc_node.address}: {self.instance.vars['config']}: {exc}") from exc
        if redis is not None:
            self.after_steps.append(RedisDescriptorPurge(redis, self.log))
        # the collector prepares last, after every check that may refuse; retention deletes inside the
        # window (never between a concurrent mark and the window: what it frees goes at the next run)
        if isinstance(self.collector, ConcurrentGC):
            self._step("mark", host=self.gc_node.address)
        self.collector.prepare(self.gc_node)

    # -- the window ------------------------------------------------------------------------------
    def _window(self) -> None:
        # recreated or stopped since: refused; its start time now is what a restart is proved against
        self.instance = containers.ensure_same(self.instance, self.gc_node.host)
        for node in self.nodes:
            node.plan = plan_for(self.instance, node, self.options.mode, self.run_id, self.options.max_window)
        opened = time.monotonic()
        window = self.window = Window(self.nodes, self.instance, self.state_dir, self.log, self.cancel, self.on_step)
        with window:
            # every step and the collector stop early enough for the restore to end by max_window
            deadline = opened + self.options.max_window - window.restore_reserve
            inside = InWindow(self.gc_node, deadline, self.cancel, self.options.max_window)
            for step in self.steps:
                self._step(step.name, host=self.gc_node.address)
                run_step(step, inside)
            self._step("gc", host=self.gc_node.address)
            if deadline <= time.monotonic():
                raise WindowFailed(f"max_window ({self.options.max_window:g}s) leaves no time for GC: "
                                   f"{time.monotonic() - opened:.1f}s of it went on entering the window and "
                                   f"restoring needs about {window.restore_reserve:.1f}s; GC not run")
            try:
                self.collector.run(inside, self.collected)
            finally:
                if self.after_steps and self.collected.started:
                    in_flight = sys.exc_info()[1] is not None
                    try:
                        self._after_collector()
                    except GcopsError as exc:  # never hide the collector's own failure
                        if not in_flight:
                            raise
                        self.gc_node.notes.append(f"{self.gc_node.address}: after the collector: {exc}")
        self.result.read_only_verified = window.verified
        if not window.restored:
            raise WindowFailed(self._node_notes()[0] if self._node_notes() else "not restored")
        if self.collected.started and self.collected.summary is None:
            self._read_collector_output()
        summary = self.collected.summary
        untagged = sum(step.figures.manifests_deleted for step in self.steps)
        if summary is not None:
            self.result.blobs_deleted = summary.blobs_removed
            self.result.manifests_deleted = (summary.manifests_removed or 0) + untagged
        self.result.gc_seconds = self.collected.seconds
        self.log.info("gc_done", host=self.gc_node.address, blobs_deleted=self.result.blobs_deleted,
                      manifests_deleted=self.result.manifests_deleted, seconds=self.collected.seconds)

    def _after_collector(self) -> None:
        """Inside the window, whatever the collector's fate: what it deleted must be known, and caches purged,
        before writes are accepted again. A collector that did not end is stopped first."""
        node = self.gc_node
        if node.host is None:       # a reconnect during the GC failed: try once more (HostError otherwise)
            node.reconnect(self.instance)
        if self.collected.exit_code is None:
            node.host.run(hostside.gc_stop_command(node.plan), timeout=120, check=False)
        error = self.collector.read_output(node, self.collected)
        for step in self.after_steps:
            self._step(step.name, host=node.address)
            step.apply_after(node, self.collected)
        if error:
            raise WindowFailed(error)

    def _read_collector_output(self) -> None:
        error = self.collector.read_output(self.gc_node, self.collected)
        if error:
            raise WindowFailed(error)

    # -- after -----------------------------------------------------------------------------------
    def _settle(self, before: filesystem.StorageSnapshot | None) -> None:
        """Whatever happened: the window's figures, the notes of every node, and the storage measured
        again whenever this run may have changed it (a GC stopped mid-sweep has freed space too)."""
        window = self.window
        if window is not None:
            self.result.window_seconds = window.seconds
            if self.result.read_only_verified is None:
                self.result.read_only_verified = window.verified
        self.result.warnings = [w for node in self.nodes for w in node.warnings]
        # tags gone are recorded whatever happened after
        self.result.tags_deleted = [t for step in self.steps for t in step.figures.tags_deleted]
        for warning in self.result.warnings:
            self.log.warning("read_only_not_verified", detail=warning)
        errors = self._node_notes()
        if any(node.state is NodeState.NOT_RESTORED for node in self.nodes):
            self.result.status = NOT_RESTORED
            errors.extend(containers.changed_since_resolved(self.instance, self.gc_node.host))
        elif errors and self.result.status == OK:
            self.result.status = FAILED
        if errors:
            known = self.result.error or ""
            self.result.error = "; ".join([known] * bool(known) + [n for n in errors if n not in known])
        touched = (self.collected.started or any(step.status is not StepStatus.PLANNED for step in self.steps)
                   or bool(self.result.tags_deleted))
        if before is not None and (self.result.status == OK or touched):
            try:
                after = self._measure("measure_after")
            except GcopsError as exc:
                self.result.error = "; ".join(filter(None, [self.result.error, f"measuring after: {exc}"]))
                if self.result.status == OK:
                    self.result.status = FAILED
                return
            self._record_snapshot(after, "after")
            self.result.reclaimed_bytes = before.storage_bytes - after.storage_bytes
            if self.result.blobs_deleted is None and touched:
                self.result.blobs_deleted = max(0, before.blobs - after.blobs)

    def _measure(self, step: str) -> filesystem.StorageSnapshot:
        node = self.gc_node
        self._step(step, host=node.address)
        if node.host is None:
            raise HostError(f"{node.address}: no connection")
        t0 = time.monotonic()
        if node.facts.bucket is not None:   # the bucket is listed from this machine
            snap = s3.measure(node.facts.bucket.settings, self._measure_progress(step))
        else:
            try:
                out = node.host.run(filesystem.measure_command(node.facts.storage_root), timeout=None).text
            except HostError:
                out = node.reconnect(self.instance).run(filesystem.measure_command(node.facts.storage_root),
                                                        timeout=None).text
            snap = filesystem.parse_measurement(out)
        self.on_step(self.instance.name, step, storage_bytes=snap.storage_bytes)
        self.log.info(f"{step}_done", host=node.address, storage_bytes=snap.storage_bytes, blobs=snap.blobs,
                      fs_used_bytes=snap.fs_used_bytes, seconds=round(time.monotonic() - t0, 3))
        return snap

    def _measure_progress(self, step: str):
        """on_progress(objects, bytes) for a long bucket listing: the live table shows the bytes so far."""
        return lambda objects, size: self.on_step(self.instance.name, step, storage_bytes=size)

    def _record_snapshot(self, snap: filesystem.StorageSnapshot, when: str) -> None:
        setattr(self.result, f"storage_bytes_{when}", snap.storage_bytes)
        setattr(self.result, f"fs_used_bytes_{when}", snap.fs_used_bytes)
        setattr(self.result, f"blobs_{when}", snap.blobs)

    def _node_notes(self) -> list[str]:
        return [note for node in self.nodes for note in node.notes]

    def _fail(self, status: str, error: str, *, lock_held: bool = False, interrupted: bool = False) -> None:
        self.result.status = status
        self.result.error = error
        self.result.lock_held = self.result.lock_held or lock_held
        self.result.interrupted = self.result.interrupted or interrupted
        self.log.warning("instance_failed", status=status, error=error)

    def _step(self, step: str, **fields) -> None:
        self.on_step(self.instance.name, step)
        self.log.info(step, **fields)
