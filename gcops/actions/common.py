"""What the verbs share: working instances in parallel, and turning SIGINT/SIGTERM into a cancel flag."""
from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import structlog

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
    """Yield an Event set by SIGINT/SIGTERM/SIGHUP; the work then restores and returns.

    A second signal is only logged: gcops never abandons a restore half-way.
    """
    cancel = threading.Event()
    log = structlog.get_logger()
    previous = {}

    def handler(signum, frame):
        if cancel.is_set():
            log.warning("still_restoring", signal=signal.Signals(signum).name)
            return
        log.warning("interrupted", signal=signal.Signals(signum).name, action="restoring every instance")
        cancel.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield cancel
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def map_parallel(work: Callable[[T], R], items: Sequence[T], parallel: int) -> list[R]:
    """Results of `work(item)` in the order of `items`, `parallel` at a time.

    `work` must not raise (each instance catches its own failures); the main
    thread waits in short slices so signal handlers run promptly.
    """
    if parallel <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallel, len(items)), thread_name_prefix="gcops") as pool:
        futures = [pool.submit(work, item) for item in items]
        results = []
        for future in futures:
            while True:
                try:
                    results.append(future.result(timeout=0.2))
                    break
                except TimeoutError:
                    continue
        return results
