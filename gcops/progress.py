"""A live view per instance (step, elapsed) on a terminal; nothing otherwise."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gcops.report.rows import human_bytes


class _Board:
    def __init__(self):
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[str, float, float]] = {}   # name -> (step, started, step_started)
        self.sizes: dict[str, str] = {}

    def update(self, name: str, step: str, **fields) -> None:
        now = time.monotonic()
        with self.lock:
            started = self.rows.get(name, (step, now, now))[1]
            self.rows[name] = (step, started, now)
            if "storage_bytes" in fields:
                self.sizes[name] = human_bytes(fields["storage_bytes"])
            if fields.get("reclaimed_bytes") is not None:
                self.sizes[name] += f" (-{human_bytes(fields['reclaimed_bytes'])})"

    def __rich__(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        # instance and storage are what the admin follows: never cut (fits 80 columns); the step may wrap
        table.add_column("instance", no_wrap=True)
        table.add_column("step", overflow="fold")
        table.add_column("elapsed", no_wrap=True, justify="right")
        table.add_column("storage", no_wrap=True)
        now = time.monotonic()
        with self.lock:
            for name, (step, started, step_started) in self.rows.items():
                done = step in ("ok", "failed", "skipped", "not_restored")
                table.add_row(name, step if done else f"{step} {now - step_started:.1f}s", f"{now - started:.1f}s",
                              self.sizes.get(name, ""))
        return table


@contextmanager
def live_progress(enabled: bool) -> Iterator[Callable[..., None] | None]:
    """Yield an on_step(instance, step, **figures) callback drawing a live table, or None when disabled."""
    if not enabled:
        yield None
        return
    board = _Board()
    with Live(board, console=Console(stderr=True), refresh_per_second=4, transient=True):
        yield board.update
