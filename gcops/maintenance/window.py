"""The write-refused window over every node of one instance, as a context manager.

Entering goes node by node (the other HA nodes first, the GC node last), each
verified before the next; leaving happens whatever ends the block (success,
exception, cancel), last-in-first-out, each node once, and a failure leaving
one node never skips the others (certbot's error handler, applied to nodes).
"""
from __future__ import annotations

import threading
from typing import Callable

from gcops.config import Instance
from gcops.errors import Cancelled, GcopsError
from gcops.maintenance.node import Node, enter, leave, verify

# Stopping a GC takes up to this long (restore.sh: SIGTERM to its process group, SIGKILL 1 s later).
GC_STOP_SECONDS = 1.0
# Past max_window, writes are accepted again within this (README, benchmarks/overrun.py): what the
# reserve below cannot foresee (noticing the deadline, the round trip to the host, the restore's own checks,
# a restart back slower than the one into the window).
OVERRUN_MARGIN_SECONDS = 2.0


class Window:
    """`with Window(...) as window:` every node read-only (or stopped) and verified inside the block."""

    def __init__(self, nodes: list[Node], instance: Instance, state_dir, log, cancel: threading.Event,
                 on_step: Callable[..., None]):
        self.order = nodes[1:] + nodes[:1]       # the GC node (nodes[0]) last in, first out
        self.instance, self.state_dir, self.log = instance, state_dir, log
        self.cancel, self.on_step = cancel, on_step
        self.entered: list[Node] = []

    def __enter__(self) -> "Window":
        try:
            for node in self.order:
                if self.cancel.is_set():
                    raise Cancelled("interrupted before the window")
                self._step("enter_read_only" if node.plan.host_mode == "readonly" else "stop_registry", node)
                self.entered.append(node)
                outcome = enter(node, self.instance.name, self.state_dir, self.log)
                verify(node, outcome, self.instance)
        except BaseException:
            self.leave_all()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.leave_all()
        return False

    def leave_all(self) -> None:
        """Leave every entered node, newest first, each once; one failing never stops the rest.

        A bug while leaving one node is raised again only after every other node was left."""
        bug: BaseException | None = None
        for node in reversed(self.entered):
            if not node.entered or node.left:
                continue
            self._step("restore", node)
            try:
                leave(node, self.instance, self.state_dir, self.log)
            except GcopsError as exc:
                node.not_restored(str(exc))
            except Exception as exc:  # noqa: BLE001 - not swallowed: raised once the other nodes are left
                node.not_restored(f"{type(exc).__name__}: {exc}")
                self.log.exception("leave_failed", host=node.address)
                bug = bug or exc
        if bug is not None:
            raise bug

    @property
    def restored(self) -> bool:
        return all(node.left or not node.entered for node in self.entered)

    @property
    def seconds(self) -> float | None:
        """From the first moment writes were refused to the moment they were accepted again (host clocks)."""
        starts = [n.window_start for n in self.entered if n.window_start is not None]
        ends = [n.window_end for n in self.entered if n.window_end is not None]
        if not starts:
            return 0.0
        if not ends:
            return None
        return max(0.0, max(ends) - min(starts))

    @property
    def restore_reserve(self) -> float:
        """Seconds to keep for leaving, so that writes are accepted again by max_window: the GC's stop, then
        each entered node restarted back (one after the other) as long as its restart into the window took."""
        return GC_STOP_SECONDS + sum(n.service_seconds or 0.0 for n in self.entered)

    @property
    def verified(self) -> bool | None:
        values = [n.verified for n in self.entered if n.verified is not None]
        return all(values) if values else None

    def _step(self, step: str, node: Node) -> None:
        self.on_step(self.instance.name, step)
        self.log.info(step, host=node.address)
