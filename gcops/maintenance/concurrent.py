"""`--mode concurrent` as a collector of the window (see gcops/concurrent.py for the mechanism and its proof).

`prepare` runs before the window, writes still accepted: the marker and the registry's own
GC in dry-run (the mark; can take as long as a GC, the registry keeps taking pushes). The
collector command, run by gc.sh inside the verified window like the registry's GC, is the delta
and the sweep. `cleanup` removes the marker and the work dir whatever happened.
"""
from __future__ import annotations

import threading
import time

from gcops import hostside
from gcops.concurrent import (ConcurrentCollection, ConcurrentError, CollectOutcome, describe, parse_collect,
                              work_dir)
from gcops.hostside import outcomes, scripts
from gcops.hosts import CommandTimeout, HostError, connect
from gcops.maintenance.collect import Collected
from gcops.maintenance.node import Node, WindowFailed, gc_command, ssh_settings
from gcops.registry.gc_output import GCSummary

COMBINATION_REFUSED = ("--delete-untagged cannot be combined with --mode concurrent (untagged manifests are only "
                       "known to be unreachable while writes are refused, after the mark); run it with "
                       "--mode readonly")


def refusal(mode: str, delete_untagged: bool) -> str | None:
    """Why these options cannot run together (a usage error), or None."""
    return COMBINATION_REFUSED if mode == "concurrent" and delete_untagged else None


class ConcurrentGC:
    """The collector of --mode concurrent: mark before the window, delta + sweep inside it."""

    name = "concurrent_sweep"

    def __init__(self, instance, run_id: str, log):
        self.instance, self.run_id, self.log = instance, run_id, log
        self.collection: ConcurrentCollection | None = None
        self.outcome: CollectOutcome | None = None

    def _collection(self, node: Node) -> ConcurrentCollection:
        if self.collection is None:
            self.collection = ConcurrentCollection(
                node.host, storage_root=node.facts.storage_root,
                workdir=work_dir(hostside.host_state_dir(self.instance.vars["config"]), self.run_id),
                run_id=self.run_id, gc_dry_run=gc_command(self.instance, dry_run=True), log=self.log)
        return self.collection

    def describe(self, node: Node) -> list[str]:
        return describe(node.facts.storage_root, gc_command(self.instance, dry_run=True))

    def mark_command(self, node: Node) -> str:
        """The exact command the mark sends (before the window)."""
        col = self._collection(node)
        return scripts.command("concurrent_mark", col.root, col.workdir, col.run_id, col.gc_dry_run)

    def cleanup_command(self, node: Node) -> str:
        col = self._collection(node)
        return scripts.command("concurrent_cleanup", col.root, col.workdir, col.run_id)

    def prepare(self, node: Node, cancel: threading.Event) -> None:
        """Writes accepted: the mark. Raises WindowFailed (nothing changed) or hosts.Cancelled."""
        try:
            mark = self._collection(node).mark(cancel=cancel)
        except ConcurrentError as exc:
            raise WindowFailed(f"{node.address}: {exc}") from exc
        self.log.info("marked", host=node.address, candidates=mark.candidates, gc_seconds=mark.gc_seconds)

    def command(self, node: Node) -> str:
        """The exact command sent to the GC node inside the window (dry-run prints it too)."""
        return hostside.collect_command(node.plan, self._collection(node).collector_command())

    def run(self, node: Node, deadline: float, cancel: threading.Event, collected: Collected) -> None:
        lines: list[str] = []
        try:
            code, _ = node.host.stream(self.command(node), lines.append, deadline=deadline, cancel=cancel)
        except CommandTimeout as exc:
            collected.started = True
            raise WindowFailed(f"the concurrent sweep ran past max_window ({node.plan.max_window:g}s); "
                               "stopped and restored") from exc
        outcome = outcomes.parse_collect(code, "\n".join(lines))
        collected.started = outcome.started
        collected.seconds = outcome.seconds
        if outcome.lock_lost:
            raise WindowFailed(f"{node.address}: this run no longer holds the lock (taken over by "
                               f"{outcome.kv.get('lock_lost') or 'nobody'}); nothing swept")
        if outcome.exit_code is None:
            raise WindowFailed(f"{node.address}: the collector script ended early (exit {code}): "
                               f"{outcomes.tail(outcome.text)}")
        collected.exit_code = outcome.exit_code

    def read_output(self, node: Node, collected: Collected) -> str | None:
        """After the window: the collector's counts from its log, the swept digests; an error line or None."""
        lines: list[str] = []
        try:
            node.host.stream(hostside.gc_log_command(node.plan), lines.append, cancel=None)
            node.host.stream(self.collection.swept_digests_command(), collected.deleted_digests.append, cancel=None)
        except HostError as exc:
            return f"{node.address}: the concurrent sweep's output could not be read: {exc}"
        try:
            self.outcome = out = parse_collect("\n".join(lines), collected.exit_code or 0)
        except ConcurrentError as exc:
            return f"{node.address}: {exc}"
        collected.summary = GCSummary(flavour="concurrent", blobs_eligible=out.sweep.swept,
                                      blobs_deleted=out.sweep.swept, manifests_eligible=0, lines=len(lines))
        mark = self.collection.mark_outcome
        if mark is not None and mark.gc_seconds is not None:    # the GC's work: the mark and the sweep
            collected.seconds = (collected.seconds or 0.0) + mark.gc_seconds
        self.log.info("concurrent_swept", host=node.address, links=out.delta.links, protected=out.delta.protected,
                      candidates=out.sweep.candidates, spared=out.sweep.spared, swept=out.sweep.swept,
                      delta_seconds=out.delta_seconds, sweep_seconds=out.sweep_seconds)
        if not out.complete:
            return f"{node.address}: the concurrent sweep was stopped part-way ({out.sweep.swept} blobs swept)"
        return None

    def cleanup(self, node: Node) -> None:
        """Whatever happened: the marker and the work dir go, a dry-run GC still running is stopped
        (over a new connection when the run's own dropped). Never raises: it runs in `finally`."""
        if self.collection is None:
            return
        t0 = time.monotonic()
        if not self.collection.cleanup():
            try:
                node.host.close()
                node.host = self.collection.host = connect(node.address, ssh_settings(self.instance))
                self.collection.cleanup()
            except Exception as exc:  # noqa: BLE001 - the next mark removes what is left
                self.log.warning("concurrent_cleanup_failed", host=node.address, error=str(exc))
        self.log.info("concurrent_cleaned", host=node.address, seconds=round(time.monotonic() - t0, 3))
