"""What a client of the registry sees while a GC procedure runs, and which processes run when.

`ClientProbe` runs two threads that join a test host's network namespace once and then
poll that host's registry (127.0.0.1:5000 inside the host), each with a fresh TCP
connection per request, every `interval` seconds, each request bounded by `timeout`:

- writer: PUT /v2/bench-probe/manifests/probe with the body `{}`. A writable registry answers
  400 (invalid manifest, nothing is stored), a read-only one 405; while it restarts the
  connection is refused or closed.
- reader: GET /v2/ and GET /v2/<repo>/manifests/<tag> of a kept tag, alternately. 200 is a
  success; anything else (refused/reset/closed connection, timeout, any other status) a failure.

`ProcWatch` scans /proc every `interval` s for the host's registry processes (`serve` and
`garbage-collect`, matched by the host's network namespace) and records when each was first
and last seen. All times are time.time() (the hosts share this machine's clock).
"""
from __future__ import annotations

import ctypes
import http.client
import os
import socket
import threading
import time
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
MAX_SAMPLES = 200_000          # per thread; at ~60/s that is almost an hour
WRITE_PATH = "/v2/bench-probe/manifests/probe"
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
          "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json")


def _enter_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def request(method: str, path: str, *, body: bytes = b"", headers: dict | None = None,
            timeout: float = 2.0) -> int | str:
    """One request on a fresh connection: the status code, or what went wrong as a word."""
    conn = http.client.HTTPConnection("127.0.0.1", 5000, timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except ConnectionRefusedError:
        return "refused"
    except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
        return "closed"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as exc:
        return f"error:{type(exc).__name__}"
    finally:
        conn.close()


@dataclass(frozen=True)
class Sample:
    t0: float            # request sent (time.time())
    t1: float            # answer, refusal or timeout
    what: str            # "put", "v2", "manifest"
    outcome: int | str


class ClientProbe:
    def __init__(self, netns_path: str, repo: str, tag: str, *, interval: float = 0.01, timeout: float = 2.0):
        self.netns_path, self.interval, self.timeout = str(netns_path), interval, timeout
        self.manifest_path = f"/v2/{repo}/manifests/{tag}"
        self.writes: list[Sample] = []
        self.reads: list[Sample] = []
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(self._write_once, self.writes), daemon=True),
                        threading.Thread(target=self._run, args=(self._read_once, self.reads), daemon=True)]
        self._n = 0

    def _write_once(self) -> Sample:
        t0 = time.time()
        out = request("PUT", WRITE_PATH, body=b"{}", timeout=self.timeout,
                      headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        return Sample(t0, time.time(), "put", out)

    def _read_once(self) -> Sample:
        self._n += 1
        what, path, headers = (("v2", "/v2/", {}) if self._n % 2 else ("manifest", self.manifest_path, {"Accept": ACCEPT}))
        t0 = time.time()
        out = request("GET", path, headers=headers, timeout=self.timeout)
        return Sample(t0, time.time(), what, out)

    def _run(self, once, samples: list) -> None:
        try:
            _enter_netns(self.netns_path)
            while not self.stop_event.is_set() and len(samples) < MAX_SAMPLES:
                samples.append(once())
                self.stop_event.wait(self.interval)
        except Exception as exc:  # reported by the benchmark, never silent
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def start(self) -> "ClientProbe":
        for t in self.threads:
            t.start()
        return self

    def wait_steady(self, timeout: float = 30, n: int = 5) -> None:
        """Poll until the last n writes were accepted (400) and the last n reads succeeded."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.errors:
                raise RuntimeError(f"probe failed: {self.errors}")
            w, r = self.writes[-n:], self.reads[-n:]
            if len(w) == n and len(r) == n and all(s.outcome == 400 for s in w) and all(s.outcome == 200 for s in r):
                return
            time.sleep(self.interval)
        raise RuntimeError(f"registry not steady: last writes {[s.outcome for s in self.writes[-n:]]}, "
                           f"reads {[s.outcome for s in self.reads[-n:]]}")

    def finish(self) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        if self.errors:
            raise RuntimeError(f"probe failed: {self.errors}")


# -- analysis (pure) -------------------------------------------------------------------------------
def periods(samples: list[Sample], bad) -> list[tuple[float, float, int]]:
    """Contiguous runs of samples with bad(outcome): (start, end, count).

    A run starts halfway between the end of the last good sample before it and the start of its
    first bad sample, and ends halfway between the end of its last bad sample and the start of the
    next good one (the change happened somewhere in between); at either end of the record the bad
    sample's own time is used. Resolution: about half of (interval + request time) at each edge.
    """
    out, i, s = [], 0, sorted(samples, key=lambda x: x.t0)
    while i < len(s):
        if not bad(s[i].outcome):
            i += 1
            continue
        j = i
        while j + 1 < len(s) and bad(s[j + 1].outcome):
            j += 1
        start = (s[i - 1].t1 + s[i].t0) / 2 if i > 0 else s[i].t0
        end = (s[j].t1 + s[j + 1].t0) / 2 if j + 1 < len(s) else s[j].t1
        out.append((start, end, j - i + 1))
        i = j + 1
    return out


def write_view(samples: list[Sample]) -> dict:
    """The write-refused window: from the start of the first period in which a push would not
    succeed (405 or no connection) to the end of the last one; also the 405-only span."""
    not_accepted = periods(samples, lambda o: o != 400)
    r405 = periods(samples, lambda o: o == 405)
    down = periods(samples, lambda o: isinstance(o, str))
    window = (not_accepted[-1][1] - not_accepted[0][0]) if not_accepted else 0.0
    return {"window": window, "start": not_accepted[0][0] if not_accepted else None,
            "end": not_accepted[-1][1] if not_accepted else None,
            "span_405": (r405[-1][1] - r405[0][0]) if r405 else 0.0,
            "first_405": r405[0][0] if r405 else None, "last_405": r405[-1][1] if r405 else None,
            "down_seconds": sum(e - b for b, e, _ in down), "down_periods": len(down),
            "probes": len(samples), "outcomes": _count(samples)}


def read_view(samples: list[Sample]) -> dict:
    bad = periods(samples, lambda o: o != 200)
    return {"failed_seconds": sum(e - b for b, e, _ in bad), "failed_probes": sum(n for _, _, n in bad),
            "periods": [(round(b, 3), round(e - b, 3), n) for b, e, n in bad],
            "probes": len(samples), "outcomes": _count(samples),
            "max_latency": max((x.t1 - x.t0 for x in samples), default=0.0)}


def _count(samples) -> dict:
    out: dict = {}
    for x in samples:
        out[str(x.outcome)] = out.get(str(x.outcome), 0) + 1
    return out


# -- processes -------------------------------------------------------------------------------------
class ProcWatch:
    """Lifetimes of one host's registry processes: {pid: [kind, first_seen, last_seen]}."""

    def __init__(self, net_ino: int, interval: float = 0.01):
        self.net_ino, self.interval = net_ino, interval
        self.procs: dict[int, list] = {}
        self._seen: set[int] = set()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _classify(self, pid: int) -> tuple[str | None, bool]:
        """(kind or None, whether pid is in the host's network namespace)."""
        try:
            in_ns = os.stat(f"/proc/{pid}/ns/net").st_ino == self.net_ino
            if not in_ns:
                return None, False
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            return None, False
        if len(argv) >= 2 and argv[0].endswith(b"docker-registry") and argv[1] in (b"serve", b"garbage-collect"):
            return argv[1].decode(), True
        return None, True

    def _loop(self) -> None:
        # A pid is first seen as a shell (fork) and becomes the registry later (exec); unclassified
        # pids are looked at again while young (nsenter joins the namespace after its fork) or while
        # they are in the host's namespace (few: sshd, shells, the anchor).
        pending: dict[int, tuple[float, bool]] = {}
        while not self.stop_event.is_set():
            now = time.time()
            pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
            for pid in pids - self._seen:
                self._seen.add(pid)
                pending[pid] = (now, True)
            for pid, (first, in_ns) in list(pending.items()):
                if pid not in pids:
                    del pending[pid]
                elif in_ns or now - first < 3:
                    kind, in_ns = self._classify(pid)
                    if kind:
                        self.procs[pid] = [kind, now, now]
                        del pending[pid]
                    else:
                        pending[pid] = (first, in_ns)
            for pid, rec in self.procs.items():
                if pid in pids and _alive(pid):
                    rec[2] = now
            self._seen &= pids
            self.stop_event.wait(self.interval)

    def start(self) -> "ProcWatch":
        self.thread.start()
        return self

    def finish(self) -> list[tuple[str, int, float, float]]:
        self.stop_event.set()
        self.thread.join(5)
        return sorted(((k, pid, a, b) for pid, (k, a, b) in self.procs.items()), key=lambda x: x[2])


def _alive(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
