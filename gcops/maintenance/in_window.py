"""The one protocol of everything that runs inside the window on the GC node.

Steps (retention, --delete-untagged) and collectors (the registry's GC, the
concurrent sweep) alike:

- ``prepare(...)`` before the window, writes still accepted: reads only; may
  raise Refused (nothing touched);
- ``apply(window)`` (a step) or ``run(window, collected)`` (a collector) inside
  the verified window, given an `InWindow`: every read goes through
  ``window.host``, bounded by the window's deadline; every change goes through
  ``window.change`` (or ``window.stream`` for a collector), that is through
  gc.sh, which runs it only while this run holds the lock, in a session of its
  own that restore.sh -- gcops' leave, or the watchdog past max_window --
  stops before writes are accepted again;
- ``figures`` (`StepFigures`) and ``status`` (`StepStatus`) say what it did.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from gcops import hostside
from gcops.errors import Cancelled, WindowFailed
from gcops.hostside import outcomes
from gcops.state.step_figures import StepStatus
from gcops.transport.hosts import CommandTimeout, ConnectionLost, Result


class DeadlineHost:
    """A Host whose every command ends by the window's deadline; past it, WindowFailed."""

    def __init__(self, window: "InWindow"):
        self.window = window
        self.name = window.node.address

    def run(self, command: str, *, input: bytes | None = None, timeout: float | None = 120,
            check: bool = True) -> Result:
        left = self.window.left()
        try:
            return self.window.node.host.run(command, input=input, check=check,
                                             timeout=left if timeout is None else min(timeout, left))
        except CommandTimeout as exc:
            raise self.window.overrun("reading the storage") from exc


class InWindow:
    """The verified window as a step sees it: the GC node, the deadline (monotonic) and the cancel flag."""

    def __init__(self, node, deadline: float, cancel: threading.Event, max_window: float):
        self.node, self.deadline, self.cancel, self.max_window = node, deadline, cancel, max_window
        self.host = DeadlineHost(self)

    def left(self) -> float:
        """Seconds until the deadline. Raises Cancelled, or WindowFailed once it has passed."""
        if self.cancel.is_set():
            raise Cancelled("interrupted inside the window")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.overrun("the window's steps")
        return left

    def overrun(self, what: str) -> WindowFailed:
        return WindowFailed(f"{self.node.address}: {what} ran past max_window ({self.max_window:g}s); "
                            "stopped and restored")

    def stream(self, what: str, command: str, on_line: Callable[[str], None], *, step: bool,
               input: bytes | None = None) -> tuple[int, list[str]]:
        """Run `command` under gc.sh until the deadline; gives (exit, tail). Raises WindowFailed past the
        deadline, Cancelled, ConnectionLost (the caller decides: a GC goes on without gcops)."""
        self.left()
        try:
            return self.node.host.stream(hostside.collect_command(self.node.plan, command, step=step), on_line,
                                         input=input, deadline=self.deadline, cancel=self.cancel)
        except CommandTimeout as exc:
            raise self.overrun(what) from exc

    def change(self, what: str, command: str, input: bytes | None = None) -> outcomes.CollectOutcome:
        """A step's change: `command` (stdin `input`) run by gc.sh, only while this run holds the lock,
        stopped with the window. Gives the outcome (its output in `.text`). Raises WindowFailed when it
        could not run or did not end well (the window then restores; restore.sh stops it first)."""
        lines: list[str] = []
        try:
            code, _ = self.stream(what, command, lines.append, step=True, input=input)
        except ConnectionLost as exc:
            raise WindowFailed(f"{self.node.address}: the connection dropped during {what}: {exc}") from exc
        outcome = outcomes.parse_collect(code, "\n".join(lines))
        if outcome.lock_lost:
            raise WindowFailed(f"{self.node.address}: this run no longer holds the lock (taken over by "
                               f"{outcome.kv.get('lock_lost') or 'nobody'}); {what} not run")
        if outcome.exit_code != 0:
            raise WindowFailed(f"{self.node.address}: {what} failed (exit {outcome.exit_code}): "
                               f"{outcomes.tail(outcome.text)}")
        return outcome


def run_step(step, window: InWindow) -> None:
    """Apply one step inside the window, its status kept whatever happens."""
    try:
        step.apply(window)
    except BaseException:
        step.status = StepStatus.FAILED
        raise
    step.status = StepStatus.APPLIED

