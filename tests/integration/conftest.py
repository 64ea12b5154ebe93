"""Fixtures for gcops' own integration tests: a registry host with real garbage."""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import images

LAYER = 64 * 1024


@dataclass
class Garbage:
    kept: list[images.Image]       # tags that must still pull after GC
    deleted: list[images.Image]    # images whose tags were deleted


def make_garbage(host, tmp_path: Path, *, kept: int = 2, deleted: int = 2, repo: str = "team/app",
                 seed: int = 0) -> Garbage:
    """Push kept+deleted images (sharing one base layer) and delete the tags of `deleted` of them."""
    pushed = []
    for i in range(kept + deleted):
        layout = images.build_layout(tmp_path / f"oci-{repo.replace('/', '_')}-{i}", f"t{i}", seed=seed * 100 + i,
                                     layer_size=LAYER)
        pushed.append(images.push(host, layout, f"t{i}", repo))
    for img in pushed[kept:]:
        images.delete_tag(host, repo, img.tag)
    return Garbage(kept=pushed[:kept], deleted=pushed[kept:])


def all_pull(host, imgs) -> bool:
    return all(images.pulls(host, img.repo, img.tag) for img in imgs)


class ConnectionCounter:
    """A TCP listener that only counts who connects (proves no host was contacted)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def connection_counter():
    counter = ConnectionCounter()
    yield counter
    counter.close()


def slow_registry(tmp_path: Path, delay: float) -> Path:
    """TEST FIXTURE: the real registry binary, started `delay` seconds late (a long GC)."""
    path = tmp_path / f"slow-registry-{delay:g}"
    path.write_text(f"#!/bin/sh\nsleep {delay:g}\nexec /usr/bin/docker-registry \"$@\"\n")
    path.chmod(0o755)
    return path


def wait_for(cond, timeout: float, what: str, interval: float = 0.05):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def write_probe(host):
    """What a client pushing a manifest gets: 405 read-only, 400 writable (invalid body), None when down."""
    try:
        return host.http("PUT", "/v2/probe/app/manifests/x", body=b"{}", timeout=5,
                         headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})[0]
    except OSError:
        return None


def spawn_until_gc(host, config, *args):
    """Start `gcops --config C args...` in the background; return once its GC runs on `host`."""
    from tests.harness.gcops_cli import spawn_gcops

    proc = spawn_gcops("--config", str(config), *args)
    gc_pid = host.config_file.parent / ".gcops" / "gc.pid"
    wait_for(lambda: gc_pid.exists() or proc.poll() is not None, 30, "GC to start")
    assert proc.poll() is None, proc.communicate()
    return proc


def finish(proc, timeout: float = 120):
    """(exit code, the --json document or None, stderr) of a spawned gcops."""
    import json

    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (json.loads(out) if out.strip().startswith("{") else None), err
