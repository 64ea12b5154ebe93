"""Low-level helpers: network namespaces, veth pairs, process scans, in-namespace sockets.

Namespaces are named ``gcops-<owner pid>-<n>``; the root side of the veth pair is
``gcv<n>r`` with 10.231.<n>.1/30 and the namespace side (renamed ``eth0``) has
10.231.<n>.2/30.  ``n`` is allocated under a file lock so parallel pytest sessions
on one machine never collide.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import http.client
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

NETNS_DIR = Path("/run/netns")
PREFIX = "gcops-"
LOCK_FILE = Path("/tmp/gcops-harness-netns.lock")
ENV_MARK = "GCOPS_HARNESS_NS"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_allocated: set[int] = set()


class HarnessError(RuntimeError):
    """The harness could not set up, reach or tear down a test host."""


def run(argv: list[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise HarnessError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
    return p


def ns_name(n: int) -> str:
    return f"{PREFIX}{os.getpid()}-{n}"


def veth_root(n: int) -> str:
    return f"gcv{n}r"


def _n_in_use(n: int) -> bool:
    if Path(f"/sys/class/net/{veth_root(n)}").exists():
        return True
    return any(p.name.startswith(PREFIX) and p.name.endswith(f"-{n}") for p in _list_netns())


def _list_netns() -> list[Path]:
    try:
        return [p for p in NETNS_DIR.iterdir() if p.name.startswith(PREFIX)]
    except FileNotFoundError:
        return []


def create(deadline_s: float = 10) -> tuple[str, int, int]:
    """Create a namespace with lo up and a veth link; returns (name, n, netns inode)."""
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        start = os.getpid() % 250
        for i in range(250):
            n = 1 + (start + i) % 250
            if n not in _allocated and not _n_in_use(n):
                break
        else:
            raise HarnessError("no free 10.231.<n>.0/30 subnet for a test host (250 in use)")
        name = ns_name(n)
        run(["ip", "netns", "add", name])
        _allocated.add(n)
        try:
            run(["ip", "link", "add", veth_root(n), "type", "veth", "peer", "name", f"gcv{n}n", "netns", name])
            run(["ip", "addr", "add", f"10.231.{n}.1/30", "dev", veth_root(n)])
            run(["ip", "link", "set", veth_root(n), "up"])
            run(["ip", "-n", name, "link", "set", f"gcv{n}n", "name", "eth0"])
            run(["ip", "-n", name, "addr", "add", f"10.231.{n}.2/30", "dev", "eth0"])
            run(["ip", "-n", name, "link", "set", "eth0", "up"])
            run(["ip", "-n", name, "link", "set", "lo", "up"])
        except BaseException:
            delete(name, n)
            raise
    return name, n, os.stat(NETNS_DIR / name).st_ino


def delete(name: str, n: int | None) -> None:
    if n is not None and Path(f"/sys/class/net/{veth_root(n)}").exists():
        run(["ip", "link", "del", veth_root(n)], check=False)
    if (NETNS_DIR / name).exists():
        run(["ip", "netns", "del", name], check=False)
    if n is not None:
        _allocated.discard(n)


def _ino(pid: int | str, ns: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{ns}").st_ino
    except OSError:  # gone, or a zombie (its namespaces are already released)
        return None


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def cmdline(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _mark_of(pid: int | str) -> str | None:
    """The ENV_MARK value a process carries (the test host it belongs to), or None."""
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(f"{ENV_MARK}=".encode()):
                return item.split(b"=", 1)[1].decode(errors="replace")
    return None


def pids_in(net_ino: int | None = None, mnt_ino: int | None = None, env_mark: str | None = None) -> list[int]:
    """Live pids in the given net or mount namespace, or carrying ENV_MARK=env_mark. A process marked as
    another test host's is never one of them: namespace inode numbers are recycled once a namespace is
    freed, so a host being torn down must not take a newer host's (another pytest worker's) processes."""
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        hit = (net_ino is not None and _ino(entry, "net") == net_ino) or (
            mnt_ino is not None and _ino(entry, "mnt") == mnt_ino)
        mark = _mark_of(entry) if hit or env_mark is not None else None
        if env_mark is not None:
            if mark is not None and mark != env_mark:
                continue
            hit = hit or mark == env_mark
        if hit and alive(int(entry)):
            out.append(int(entry))
    return out


def kill_all(pids_fn, timeout: float = 10) -> list[int]:
    """SIGKILL whatever pids_fn() returns until it returns nothing; returns survivors."""
    deadline = time.monotonic() + timeout
    while True:
        pids = pids_fn()
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def in_netns(netns_path: str | Path, fn):
    """Run fn() in a short-lived thread that joined the network namespace; sockets it opens live there."""
    box: dict = {}

    def body():
        try:
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, name="gcops-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class Headers(dict):
    """Response headers; lookups ignore case ("docker-content-digest" finds "Docker-Content-Digest")."""

    def _key(self, key):
        if dict.__contains__(self, key):
            return key
        low = str(key).lower()
        return next((k for k in self if k.lower() == low), key)

    def __getitem__(self, key):
        return dict.__getitem__(self, self._key(key))

    def __contains__(self, key):
        return dict.__contains__(self, self._key(key))

    def get(self, key, default=None):
        return dict.get(self, self._key(key), default)


def http_request(netns_path: str | Path, method: str, path: str, *, body: bytes = b"",
                 headers: dict | None = None, timeout: float = 10, port: int = 5000) -> tuple[int, Headers, bytes]:
    def go():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs = Headers()
            for k, v in resp.getheaders():
                hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
            return resp.status, hdrs, data
        finally:
            conn.close()
    return in_netns(netns_path, go)


def cleanup_stale() -> None:
    """Delete gcops-* namespaces (and their processes) whose owning process is gone."""
    if os.geteuid() != 0 or not Path("/usr/sbin/ip").exists() and not Path("/sbin/ip").exists():
        return
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _cleanup_stale_locked()


def _cleanup_stale_locked() -> None:
    live_names = set()
    for p in _list_netns():
        try:
            owner = int(p.name[len(PREFIX):].split("-")[0])
            n = int(p.name.rsplit("-", 1)[1])
        except ValueError:
            continue
        if owner == os.getpid() or (alive(owner) and owner != 1):
            live_names.add(p.name)
            continue
        ino = os.stat(p).st_ino
        kill_all(lambda: pids_in(net_ino=ino, env_mark=p.name))
        delete(p.name, n)
    # processes of namespaces whose name was already deleted (a crash inside close())
    def orphans():
        out = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                for item in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                    if item.startswith(f"{ENV_MARK}={PREFIX}".encode()):
                        name = item.split(b"=", 1)[1].decode()
                        owner = int(name[len(PREFIX):].split("-")[0])
                        if name not in live_names and not (alive(owner) and owner != 1) and alive(int(entry)):
                            out.append(int(entry))
        return out
    kill_all(orphans)
    for link in Path("/sys/class/net").glob("gcv*r"):
        n = link.name[3:-1]
        if n.isdigit() and not any(x.endswith(f"-{n}") for x in live_names) and int(n) not in _allocated:
            run(["ip", "link", "del", link.name], check=False)
