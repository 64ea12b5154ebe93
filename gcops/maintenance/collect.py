"""What runs inside the verified window on the GC node: steps first, then the collector.

A *collector* frees the space: `RegistryGC` runs the registry's own
`garbage-collect` through `gc.sh` (its output to a file on the host, read and
parsed after the window, in constant memory). A *step* changes metadata first
(`UntaggedRemoval`: revision links no tag reaches). Both follow the protocol of
in_window.py: they get an `InWindow` (the GC node, the deadline, the lock-checked
way to change the storage).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from gcops import hostside
from gcops.errors import HostError, WindowFailed
from gcops.hostside.kv import parse_kv
from gcops.hostside import outcomes, scripts
from gcops.transport.hosts import ConnectionLost
from gcops.maintenance.in_window import InWindow
from gcops.maintenance.node import Node, gc_command
from gcops.registry.gc_output import GCOutputParser, GCSummary
from gcops.registry.untagged import UntaggedScan, delete_input
from gcops.retention.step import unlinked
from gcops.state.step_figures import StepFigures, StepStatus


@dataclass
class Collected:
    """What the collector did: None where it was not measured."""

    started: bool = False
    exit_code: int | None = None
    seconds: float | None = None
    summary: GCSummary | None = None
    deleted_digests: list[str] = field(default_factory=list)


class RegistryGC:
    """The registry's own garbage-collect (never with -m), run by gc.sh inside the window.

    A collector (gcops.maintenance.in_window) has `prepare(node)` (before the window, writes accepted),
    `run(window, collected)` (inside it, on the GC node) and `read_output(node, collected)` (what it deleted).
    """

    name = "gc"

    def __init__(self, instance, log):
        self.instance = instance
        self.log = log

    def prepare(self, node: Node) -> None:
        """Nothing to do before the window: the registry's GC marks and sweeps inside it."""

    def collector_command(self, node: Node) -> str:
        """What gc.sh runs inside the window: the playbook's GC command."""
        return gc_command(self.instance)

    def command(self, node: Node) -> str:
        """The exact command sent to the GC node (dry-run prints it too)."""
        return hostside.collect_command(node.plan, self.collector_command(node))

    def run(self, window: InWindow, collected: Collected) -> None:
        node = window.node
        lines: list[str] = []
        started = time.monotonic()
        try:
            code, _ = window.stream("GC", self.collector_command(node), lines.append, step=False)
        except WindowFailed:
            collected.started = True
            raise
        except ConnectionLost as exc:
            # gc.sh goes on without us: wait for its GC over a new connection rather than stop it
            self.log.warning("gc_connection_lost", host=node.address, error=str(exc))
            collected.started = True
            code, text = self._wait_after_reconnect(window, exc)
            lines = text.splitlines()
        outcome = outcomes.parse_collect(code, "\n".join(lines))
        collected.started = collected.started or outcome.started
        collected.seconds = outcome.seconds or round(time.monotonic() - started, 3)
        if outcome.lock_lost:
            raise WindowFailed(f"{node.address}: this run no longer holds the lock (taken over by "
                               f"{outcome.kv.get('lock_lost') or 'nobody'}); GC not run")
        if outcome.exit_code is None:
            raise WindowFailed(f"{node.address}: the GC script gc.sh ended early (exit {code}): "
                               f"{outcomes.tail(outcome.text)}")
        collected.exit_code = outcome.exit_code

    def _wait_after_reconnect(self, window: InWindow, lost: ConnectionLost) -> tuple[int, str]:
        """Reconnect and wait (until the deadline) for this run's GC to end; gives gc_wait.sh's exit and output."""
        node = window.node
        while True:
            left = window.left()
            try:
                node.reconnect(self.instance)
                result = node.host.run(hostside.gc_wait_command(node.plan, min(left, 30)), timeout=min(left, 30) + 30,
                                       check=False)
            except HostError as exc:
                self.log.warning("gc_reconnect_failed", host=node.address, error=str(exc))
                time.sleep(min(2.0, max(0.0, window.deadline - time.monotonic())))
                continue
            kv = parse_kv(result.text)
            if "gc_running" in kv:
                continue
            if "gc_gone" in kv:
                raise WindowFailed(f"{node.address}: the GC script ended without an exit record after the "
                                   f"connection was lost ({lost})")
            return result.exit_code, result.text

    def read_output(self, node: Node, collected: Collected) -> str | None:
        """After the window: stream the GC log through the parser; gives an error line or None."""
        parser = GCOutputParser(on_eligible_blob=collected.deleted_digests.append)
        try:
            _, tail = node.host.stream(hostside.gc_log_command(node.plan), parser.feed, cancel=None)
        except HostError as exc:
            return f"{node.address}: GC output could not be read: {exc}"
        collected.summary = parser.finish()
        if collected.exit_code not in (None, 0):
            return f"{node.address}: GC exited {collected.exit_code}: {outcomes.tail(chr(10).join(tail))}"
        return None


class UntaggedRemoval:
    """--delete-untagged: candidates found before the window, re-checked and removed inside it."""

    name = "delete_untagged"

    def __init__(self, node: Node, log):
        self.scan = UntaggedScan(node.host, node.facts.storage_root)
        self.log = log
        self.doomed: dict[str, set[str]] = {}
        self.status = StepStatus.PLANNED
        self.figures = StepFigures()

    def prepare(self) -> None:
        """Before the window (writes still accepted): candidates from the storage itself."""
        self.doomed = self.scan.find()
        self.log.info("untagged_found", repositories=len(self.doomed),
                      manifests=sum(len(d) for d in self.doomed.values()))

    def apply(self, window: InWindow) -> None:
        """Inside the window: re-check against the tags of now (reads end by the deadline), then remove
        the revision links through gc.sh (lock held, stopped with the window)."""
        if not self.doomed:
            return
        self.scan.host = window.host
        doomed = self.scan.recheck(self.doomed)
        data = delete_input(doomed)
        if data:
            self.figures.manifests_deleted = unlinked(window.change(
                "the untagged removal", scripts.command("unlink_manifests", self.scan.root), data))
        self.log.info("untagged_deleted", host=window.node.address, manifests=self.figures.manifests_deleted,
                      spared=sum(len(d) for d in self.doomed.values()) - sum(len(d) for d in doomed.values()))
