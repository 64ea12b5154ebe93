"""The two procedures compared: an admin's manual GC on the host, and `gcops run --json` over SSH.

Both return a dict with wall time and their own timestamps (time.time() / host clock, which
is this machine's clock) so window.py can put them on one timeline with the client's view.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness.gcops_cli import gcops_argv, gcops_env, instance_block, write_config  # noqa: E402

CONFIG = "/etc/docker/registry/config.yml"


def manual_script(host) -> str:
    """What an admin types on the registry host (as one script, timestamps added between steps).

    The read-only edit is a sed one-liner inserting `maintenance: readonly: enabled: true` under
    `storage:`; the original is kept in a copy outside the config directory and copied back.
    GC output goes to a file (the cheapest place an admin could send it)."""
    orig = shlex.quote(str(host.dir / "tmp" / "config.yml.orig"))
    log = shlex.quote(str(host.dir / "tmp" / "manual-gc.log"))
    return f"""set -eu
now() {{ date +%s.%N; }}
echo "t_start=$(now)"
cp -p {CONFIG} {orig}
sed -i 's/^storage:$/storage:\\n  maintenance:\\n    readonly:\\n      enabled: true/' {CONFIG}
grep -q '^  maintenance:$' {CONFIG}
echo "t_edited=$(now)"
systemctl restart docker-registry
echo "t_restarted_ro=$(now)"
docker-registry garbage-collect {CONFIG} > {log} 2>&1
echo "t_gc_done=$(now)"
cp -p {orig} {CONFIG}
echo "t_config_back=$(now)"
systemctl restart docker-registry
echo "t_end=$(now)"
echo "gc_lines=$(wc -l < {log})"
"""


def run_manual(host) -> dict:
    """The script inside the host (nsenter, as host.sh does), with the same RSS sampling as gcops gets
    (so both runs carry the same measuring load; the manual figure includes the GC itself)."""
    before = host.config_file.read_bytes()
    t0 = time.time()
    proc = subprocess.Popen(host.nsenter_argv() + ["sh", "-c", manual_script(host)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=host.env(), cwd="/")
    rss = RSSMonitor(proc.pid)
    out, err = proc.communicate(timeout=1800)
    wall = time.time() - t0
    rss.finish()
    kv = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    if proc.returncode != 0:
        raise RuntimeError(f"manual procedure on {host.name} exited {proc.returncode}: {err.decode()[-2000:]}")
    if host.config_file.read_bytes() != before:
        raise RuntimeError(f"manual procedure on {host.name} did not put the config back")
    return {"wall": wall, "t0": t0, "t1": t0 + wall, "gc_lines": int(kv.get("gc_lines", "0")),
            "marks": {k: float(v) for k, v in kv.items() if k.startswith("t_")}}


# ru_maxrss of a process counts the memory of the process that exec'd it (the kernel keeps the
# high-water mark of the mm it replaces; with vfork that is the parent's). Started straight from this
# benchmark, gcops would report the benchmark's own ~70 MiB. So gcops is started by this small launcher,
# which reports the kernel's peak for its child (max of the launcher's ~10 MiB and gcops').
LAUNCHER = """import os, sys
out, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
with open(out, "w") as fh:
    fh.write(f"{ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


class RSSMonitor:
    """Peak of the summed RSS of a process's descendants (not the process itself: the launcher or
    nsenter), sampled every `interval` s with psutil."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval, self.peak, self.samples = pid, interval, 0, 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop_event.is_set():
            total = 0
            try:
                for child in proc.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                return
            self.peak, self.samples = max(self.peak, total), self.samples + 1
            self.stop_event.wait(self.interval)

    def finish(self) -> int:
        self.stop_event.set()
        self.thread.join(5)
        return self.peak


def gcops_config(host, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return write_config(workdir / "gcops.toml", [instance_block(f"bench-{host.name}", host)],
                        state_dir=workdir / "state", client_key=host.client_key, known_hosts=host.known_hosts)


def run_gcops(host, workdir: Path, *, timeout: float = 1800, mode: str = "readonly") -> dict:
    """`gcops --log-format json -v run --json --mode MODE` as a process on the control side (this machine).

    Peak memory two ways: the kernel's high-water mark of the gcops process (wait4 ru_maxrss, taken
    by LAUNCHER; gcops runs SSH in-process, so it has no children unless a hook is set) and psutil's
    sampled peak of the process tree's summed RSS. Also its CPU time (user + system)."""
    config = gcops_config(host, workdir)
    argv = gcops_argv("--config", str(config), "--log-format", "json", "-v", "run", "--json", "--mode", mode)
    out_path, err_path, ru_path = workdir / "gcops.stdout", workdir / "gcops.stderr", workdir / "gcops.rusage"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.time()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(ru_path), *argv], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=gcops_env(), cwd=str(REPO))
        rss = RSSMonitor(proc.pid)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise RuntimeError(f"gcops on {host.name} ran past {timeout}s") from None
        wall = time.time() - t0
    peak_sampled = rss.finish()
    maxrss_kib, utime, stime = ru_path.read_text().split()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    try:
        doc = json.loads(stdout)
    except ValueError as exc:
        raise RuntimeError(f"gcops on {host.name} exited {proc.returncode}, stdout not JSON:\n{stdout[-2000:]}\n"
                           f"stderr:\n{stderr[-3000:]}") from exc
    inst = doc["instances"][0]
    if proc.returncode != 0 or inst["status"] != "ok":
        raise RuntimeError(f"gcops on {host.name} exited {proc.returncode}: {inst.get('error')}\n{stderr[-3000:]}")
    return {"wall": wall, "t0": t0, "t1": t0 + wall, "doc": doc, "instance": inst,
            "maxrss": int(maxrss_kib) * 1024, "rss_sampled_peak": peak_sampled, "rss_samples": rss.samples,
            "cpu_seconds": float(utime) + float(stime),
            "events": _events(stderr)}


def _events(stderr: str) -> list[dict]:
    """gcops' JSON log lines, each with `t` = its timestamp as epoch seconds."""
    out = []
    for line in stderr.splitlines():
        try:
            ev = json.loads(line)
            ev["t"] = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        out.append(ev)
    return out
