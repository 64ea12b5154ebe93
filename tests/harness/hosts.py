"""Test hosts: a network + mount namespace each, with a real registry and a real sshd.

Inside a host the standard paths exist as on a real server (see kinds.py); the
per-host state lives under ``base_dir/<name>`` on the real filesystem.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import netns
from .kinds import BUSYBOX_APPLETS, HOST_PATH, KINDS, registry_config as _registry_config, setup_script
from .netns import HarnessError, cleanup_stale  # noqa: F401  (re-exported)
from .sshd import make_client_key, new_host_key, sshd_config, write_known_hosts, combine_known_hosts  # noqa: F401

STANDINS = Path(__file__).parent / "bin"
HOST_ENV_DROP = ("AWS_CA_BUNDLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
# Mount points the setup script covers inside a host: base_dir must not be under them.
_HIDDEN = ("/run", "/opt", "/var/opt", "/etc/docker", "/var/lib/docker-registry", "/var/lib/containers",
           "/usr/local/sbin")
# Exec'd between unshare and the setup script: makes the host's first process (later
# sshd, which reaps any child) a child subreaper, so orphans of SSH sessions get reaped.
_SUBREAPER = ("import ctypes,os,sys; ctypes.CDLL(None).prctl(36,1,0,0,0); "
              "os.execv(sys.argv[1], sys.argv[1:])")


class CommandFailed(subprocess.CalledProcessError):
    def __str__(self):
        err = (self.stderr or b"").decode(errors="replace").strip()
        return f"{super().__str__()}\nstderr: {err[-2000:]}"


def _poll(cond, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _tcp_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


class TestHost:
    __test__ = False  # not a pytest test class

    def __init__(self, *, name, kind, dir, netns_name, n, net_ino, storage_dir, client_key):
        k = KINDS[kind]
        self.name, self.kind, self.dir = name, kind, Path(dir)
        self.netns, self.n, self._net_ino, self._mnt_ino = netns_name, n, net_ino, None
        self.address = f"10.231.{n}.2"
        self.root_address = f"10.231.{n}.1"
        self.config_path, self.storage_path, self.binary = k.config_path, k.storage_path, k.binary
        self.service_tool, self.service, self.pidfile = k.service_tool, k.service, k.pidfile
        self.config_file = self.dir / "config" / "config.yml"
        self.storage_dir = Path(storage_dir)
        self.client_key = Path(client_key)
        self.known_hosts = self.dir / "ssh" / "known_hosts"
        self.sshd_config = self.dir / "ssh" / "sshd_config"
        self.registry_log = self.dir / "registry.log"
        self.setup_log = self.dir / "setup.log"
        self._procs: list[subprocess.Popen] = []
        self._anchor: int | None = None
        self._closed = False
        self.last_pull_error = ""  # stderr of the last failed images.pulls()

    def __repr__(self):
        return f"<TestHost {self.name} {self.kind} {self.address} ns={self.netns}>"

    # -- running things inside -------------------------------------------------
    @staticmethod
    def env() -> dict[str, str]:
        """A root login environment like sshd gives (PATH has /usr/local/sbin first)."""
        return {"PATH": HOST_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
                "SHELL": "/bin/sh", "LANG": "C.UTF-8"}

    def nsenter_argv(self) -> list[str]:
        pid = self._anchor if self._anchor and netns.alive(self._anchor) else self.sshd_pid()
        if not pid:
            raise HarnessError(f"{self.name}: no process left in the host's namespaces")
        return ["nsenter", "-t", str(pid), "-n", "-m", "--"]

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 60, input: bytes | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the host's net+mount namespaces as root, with env() plus env."""
        argv = self.nsenter_argv() + list(argv)
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, cwd="/",
                           env={**self.env(), **(env or {})}, stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise CommandFailed(p.returncode, argv, p.stdout, p.stderr)
        return p

    def sh(self, cmd: str, *, check: bool = True, timeout: float = 60, input: bytes | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
        """sh -c cmd inside the host (stdout/stderr are bytes); CommandFailed shows stderr."""
        return self.run(["sh", "-c", cmd], check=check, timeout=timeout, input=input, env=env)

    def ssh_argv(self, known_hosts: Path | None = None) -> list[str]:
        return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                "-i", str(self.client_key), f"root@{self.address}"]

    def ssh(self, cmd: str, *, check: bool = True, timeout: float = 60,
            known_hosts: Path | None = None) -> subprocess.CompletedProcess:
        argv = self.ssh_argv(known_hosts) + [cmd]
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise CommandFailed(p.returncode, argv, p.stdout, p.stderr)
        return p

    def http(self, method: str, path: str, *, body: bytes = b"", headers: dict | None = None,
             timeout: float = 10) -> tuple[int, dict, bytes]:
        return netns.http_request(netns.NETNS_DIR / self.netns, method, path, body=body,
                                  headers=headers, timeout=timeout)

    # -- registry ----------------------------------------------------------------
    def registry_pid(self) -> int | None:
        try:
            pid = int((Path(f"/proc/{self._anchor}/root") / self.pidfile.lstrip("/")).read_text().split()[0])
            if self._is_registry(pid):
                return pid
        except (OSError, ValueError, IndexError, TypeError):
            pass
        return next((p for p in netns.pids_in(net_ino=self._net_ino) if self._is_registry(p)), None)

    def _is_registry(self, pid: int) -> bool:
        argv = netns.cmdline(pid)
        return (netns.alive(pid) and len(argv) > 1 and argv[1] == "serve"
                and netns._ino(pid, "net") == self._net_ino)

    def registry_up(self) -> bool:
        try:
            return self.http("GET", "/v2/", timeout=2)[0] in (200, 401)   # 401: behind authentication
        except OSError:
            return False

    def wait_registry(self, up: bool = True, timeout: float = 15) -> None:
        _poll(lambda: self.registry_up() == up, timeout, f"{self.name} registry {'up' if up else 'down'}", 0.02)

    def registry_log_text(self) -> str:
        return self.registry_log.read_text(errors="replace") if self.registry_log.exists() else ""

    # -- sshd ------------------------------------------------------------------
    def sshd_pid(self) -> int | None:
        """The sshd listener (the host's first process) if it runs."""
        return next((p.pid for p in reversed(self._procs) if p.poll() is None), None)

    def _start_sshd_proc(self, argv: list[str]) -> None:
        # The registry's AWS SDK panics at start with AWS_CA_BUNDLE set against a plain-http endpoint
        # (s3 driver), and a real host would not carry this machine's CA settings anyway.
        env = {k: v for k, v in os.environ.items() if k not in HOST_ENV_DROP}
        # marked as this host's from the first process on (not only once setup.sh reads harness.env):
        # another worker tearing down a host whose freed namespace inode this one reuses never takes it
        env[netns.ENV_MARK] = self.netns
        with open(self.setup_log, "ab") as log:
            self._procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                start_new_session=True, cwd="/", env=env))

    def _wait_sshd(self, timeout: float = 20) -> None:
        proc = self._procs[-1]

        def ready():
            if proc.poll() is not None:
                raise HarnessError(f"{self.name}: sshd/setup exited {proc.returncode}:\n{self._tail(self.setup_log)}")
            return _tcp_open(self.address, 22)
        _poll(ready, timeout, f"{self.name} sshd on {self.address}:22")

    def kill_matching(self, fragment: str) -> None:
        """SIGKILL this host's processes whose command line holds `fragment` (a `pkill -f` that, unlike
        pkill, never reaches another host's processes: there is one PID namespace for all of them)."""
        netns.kill_all(lambda: [p for p in netns.pids_in(net_ino=self._net_ino, env_mark=self.netns)
                                if fragment in " ".join(netns.cmdline(p))])

    def stop_sshd(self) -> None:
        """Kill sshd (listener and sessions); the namespaces and the registry stay."""
        pids = [p for p in netns.pids_in(net_ino=self._net_ino) if _exe(p) == "/usr/sbin/sshd"]
        for p in self._procs:
            if p.poll() is None:
                p.kill()
        netns.kill_all(lambda: [p for p in pids if netns.alive(p)])
        for p in self._procs:
            p.wait(10)
        _poll(lambda: not _tcp_open(self.address, 22), 10, f"{self.name} sshd gone")

    def start_sshd(self) -> None:
        """Start sshd again after stop_sshd()."""
        self._start_sshd_proc(self.nsenter_argv() + [sys.executable, "-c", _SUBREAPER, "/usr/sbin/sshd",
                                                      "-D", "-e", "-f", str(self.sshd_config)])
        self._wait_sshd()

    def write_wrong_known_hosts(self, path: Path) -> None:
        write_known_hosts(Path(path), [(self.address, new_host_key(self.dir / "ssh" / "wrong"))])

    # -- teardown --------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listeners = {p.pid for p in self._procs}

        def everything(keep=()):
            return [p for p in netns.pids_in(self._net_ino, self._mnt_ino, env_mark=self.netns) if p not in keep]
        # children first, so the subreaping sshd can reap them, then sshd itself
        killed = everything(listeners)
        netns.kill_all(lambda: everything(listeners))
        _poll_quiet(lambda: not any(_ppid(p) in listeners for p in killed), 1)
        left = netns.kill_all(everything)
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        netns.delete(self.netns, self.n)
        if left:
            raise HarnessError(f"{self.name}: processes survived SIGKILL: {left}")

    @staticmethod
    def _tail(path: Path, n: int = 30) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _poll_quiet(cond, timeout: float) -> None:
    try:
        _poll(cond, timeout, "")
    except HarnessError:
        pass


def start_host(name: str, kind: str = "distribution", *, storage_dir: Path | None = None,
               registry_config: str | None = None, extra_config: str = "", readonly: bool = False,
               base_dir: Path, client_key: Path, start_registry: bool = True, blobdescriptor: str = "inmemory",
               config_files: dict[str, bytes] | None = None, tcp_forwarding: bool = True,
               busybox: bool = False) -> TestHost:
    """config_files: more files for the registry's config folder (e.g. an htpasswd), by name.
    busybox: the host's find/du/df/stat/awk/sed/sort/... are BusyBox applets (first on PATH, for SSH
    sessions too) and /bin/sh is BusyBox sh, as on Alpine."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    base_dir = Path(base_dir).resolve()
    if any(base_dir == Path(m) or Path(m) in base_dir.parents for m in _HIDDEN):
        raise ValueError(f"base_dir {base_dir} is under a path the host mounts over")
    d = base_dir / name
    d.mkdir(parents=True, exist_ok=False)
    for sub in ("config", "bin", "containers", "ssh", "tmp"):
        (d / sub).mkdir()
    if storage_dir is None:
        storage_dir = d / "storage"
    storage_dir = Path(storage_dir).resolve()
    storage_dir.mkdir(parents=True, exist_ok=True)
    for target in ("/etc/docker/registry", "/var/lib/docker-registry", "/var/lib/containers"):
        Path(target).mkdir(parents=True, exist_ok=True)  # bind targets; the packages normally create them

    name_ns, n, net_ino = netns.create()
    h = TestHost(name=name, kind=kind, dir=d, netns_name=name_ns, n=n, net_ino=net_ino,
                 storage_dir=storage_dir, client_key=client_key)
    try:
        k = KINDS[kind]
        if callable(registry_config):   # a config that needs the host's addresses (S3 endpoint on its veth)
            registry_config = registry_config(h)
        h.config_file.write_text(registry_config if registry_config is not None
                                 else _registry_config(k, readonly=readonly, extra=extra_config,
                                                       blobdescriptor=blobdescriptor))
        for fname, data in (config_files or {}).items():
            (d / "config" / fname).write_bytes(data)
        tool = STANDINS / k.service_tool
        shutil.copy2(tool, d / "bin" / k.service_tool)
        busybox_bin = shutil.which("busybox") if busybox else None
        if busybox and not busybox_bin:
            raise HarnessError("busybox=True needs busybox installed (apt-get install busybox)")
        for applet in BUSYBOX_APPLETS if busybox_bin else ():
            (d / "bin" / applet).symlink_to(busybox_bin)
        q = shlex.quote
        (d / "harness.env").write_text(
            f"BIN={q(k.binary)}\nCONFIG={q(k.config_path)}\nLOG={q(str(h.registry_log))}\n"
            f"PIDFILE={q(k.pidfile)}\nURL=http://127.0.0.1:5000/v2/\n"
            f"GCOPS_HARNESS_NS={q(name_ns)}; export GCOPS_HARNESS_NS\n")
        host_pub = new_host_key(d / "ssh" / "ssh_host_ed25519_key")
        (d / "ssh" / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
        h.sshd_config.write_text(sshd_config(h.address, d / "ssh", tcp_forwarding))
        write_known_hosts(h.known_hosts, [(h.address, host_pub)])
        (d / "root.bashrc").write_text("# ~/.bashrc of a gcops test host (tests/harness): stock, nothing added\n")
        (d / "setup.sh").write_text(setup_script(k, d, h.storage_dir, h.sshd_config, start_registry,
                                                  busybox=busybox_bin))

        h._start_sshd_proc(["ip", "netns", "exec", name_ns, "unshare", "-m", "--propagation", "private", "--",
                            sys.executable, "-c", _SUBREAPER, "/bin/sh", str(d / "setup.sh")],)
        h._wait_sshd()
        h._anchor = int(_poll(lambda: (d / "anchor.pid").exists() and (d / "anchor.pid").read_text().strip(),
                              5, f"{name} anchor"))
        h._mnt_ino = netns._ino(h._anchor, "mnt")
        h.ssh("true", timeout=20)
        if start_registry and not h.registry_up():
            raise HarnessError(f"{name}: registry not answering /v2/ after start:\n"
                               f"{h._tail(h.setup_log)}\n--- registry.log ---\n{h._tail(h.registry_log)}")
    except BaseException:
        h.close()
        raise
    return h
