"""`--mode concurrent` as a collector of the window (see gcops/maintenance/concurrent_sweep.py for the mechanism and its proof).

`prepare` runs before the window, writes still accepted: the marker and the registry's own
GC in dry-run (the mark; it can take as long as a GC while the registry keeps taking pushes).
Inside the verified window gc.sh runs the collector command, the delta and the sweep, exactly as
it runs the registry's GC (so a dropped connection, max_window and the cache purge are handled
by `RegistryGC.run` and the cycle alike). `cleanup` removes the marker and the work dir whatever
happened.
"""
from __future__ import annotations

import threading
import time

from gcops import hostside
from gcops.maintenance.concurrent_sweep import ConcurrentCollection, ConcurrentError, CollectOutcome, describe, parse_collect, work_dir
from gcops.errors import GcopsError
from gcops.hostside import scripts
from gcops.transport.hosts import HostError
from gcops.maintenance.collect import Collected, RegistryGC
from gcops.maintenance.node import Node, WindowFailed, gc_command
from gcops.registry.gc_output import GCSummary

COMBINATION_REFUSED = ("--delete-untagged cannot be combined with --mode concurrent (untagged manifests are only "
                       "known to be unreachable while writes are refused, after the mark); run it with "
                       "--mode readonly")


def refusal(mode: str, delete_untagged: bool) -> str | None:
    """Why these options cannot run together (a usage error), or None."""
    return COMBINATION_REFUSED if mode == "concurrent" and delete_untagged else None


class ConcurrentGC(RegistryGC):
    """The collector of --mode concurrent: mark before the window, delta + sweep inside it."""

    name = "concurrent_sweep"

    def __init__(self, instance, log, *, run_id: str, cancel: threading.Event | None = None):
        super().__init__(instance, log)
        self.run_id, self.cancel = run_id, cancel
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
        """What this mode does, step by step (plan and run --dry-run)."""
        return describe(node.facts.storage_root, gc_command(self.instance, dry_run=True))

    def mark_command(self, node: Node) -> str:
        """The exact command the mark sends (before the window)."""
        col = self._collection(node)
        return scripts.command("concurrent_mark", col.root, col.workdir, col.run_id, col.gc_dry_run)

    def cleanup_command(self, node: Node) -> str:
        col = self._collection(node)
        return scripts.command("concurrent_cleanup", col.root, col.workdir, col.run_id)

    def prepare(self, node: Node) -> None:
        """Writes accepted: the mark. Raises WindowFailed (nothing changed) or hosts.Cancelled."""
        try:
            mark = self._collection(node).mark(cancel=self.cancel)
        except ConcurrentError as exc:
            raise WindowFailed(f"{node.address}: {exc}") from exc
        if self.log is not None:
            self.log.info("marked", host=node.address, candidates=mark.candidates, gc_seconds=mark.gc_seconds)

    def collector_command(self, node: Node) -> str:
        """What gc.sh runs inside the window: the delta and the sweep."""
        return self._collection(node).collector_command()

    def read_output(self, node: Node, collected: Collected) -> str | None:
        """The collector's counts from its log, the swept digests (for the cache purge); an error line or None."""
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
                      sweep_by=out.sweep.by, delta_seconds=out.delta_seconds, sweep_seconds=out.sweep_seconds)
        if not out.complete:
            return f"{node.address}: the concurrent sweep was stopped part-way ({out.sweep.swept} blobs swept)"
        return None

    def cleanup(self, node: Node) -> None:
        """Whatever happened: the marker and the work dir go, a dry-run GC still running is stopped
        (over a new connection when the run's own dropped). Never raises: it runs in `finally`."""
        if self.collection is None:
            return
        t0 = time.monotonic()
        self.collection.host = node.host or self.collection.host   # a reconnect may have replaced it
        if node.host is None or not self.collection.cleanup():
            try:
                self.collection.host = node.reconnect(self.instance)
                self.collection.cleanup()
            except GcopsError as exc:  # the next mark removes what is left
                self.log.warning("concurrent_cleanup_failed", host=node.address, error=str(exc))
        self.log.info("concurrent_cleaned", host=node.address, seconds=round(time.monotonic() - t0, 3))
