"""Where the GC's extra time under gcops comes from: the same real GC, output sent to different places.

    python3 benchmarks/gc_sink.py [--repos 1000] [--reps 3]

One test host; before every run its storage is reset to the same pristine copy (cp -a, sync) of a
registry with garbage G (benchmarks/build_registry.py), and a client polls the registry as in
window.py (same load). The GC process's lifetime is taken from /proc (ProcWatch). Variants:

  file            `docker-registry garbage-collect CONFIG > file 2>&1` on the host (the manual procedure)
  gcops stream    gcops' own SSHHost.stream + GCOutputParser over SSH, `exec GC 2>&1` (what `gcops run` does)
  gcops no-parse  the same stream, lines handed to a no-op (the parser's share)
  openssh         the OpenSSH client running `GC 2>&1`, output to /dev/null (any SSH stream, C client)
  file then read  over gcops' SSH: `GC > file 2>&1; cat file`, parsed by GCOutputParser afterwards
  stream via dd   gcops' stream of `GC 2>&1 | dd bs=64k iflag=fullblock`: the host batches the output
                  into 64 KiB blocks before sshd sees it

"total*" is the wall time of the variant, SSH connection set-up included for the SSH ones.
On tmpfs (--workdir /dev/shm) the figures are steady; on a disk they vary by +-30% run to run.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from build_registry import build  # noqa: E402
from gcops.transport.hosts import SSHSettings
from gcops.transport.ssh import SSHHost  # noqa: E402
from gcops.registry.gc_output import GCOutputParser  # noqa: E402
from probe import ClientProbe, ProcWatch  # noqa: E402
from tests.harness import hosts as harness, netns  # noqa: E402

GC = "/usr/bin/docker-registry garbage-collect /etc/docker/registry/config.yml"


def variants(h, log: str):
    settings = SSHSettings(user="root", port=22, identity_file=h.client_key, known_hosts=h.known_hosts,
                           host_key_policy="strict", sudo=False, connect_timeout=10)

    def stream(cmd, parse=True):
        ssh = SSHHost(h.address, settings)
        try:
            parser = GCOutputParser()
            ssh.stream(cmd, parser.feed if parse else (lambda line: None))
            return parser.finish().lines if parse else None
        finally:
            ssh.close()
    return {
        "file": lambda: h.sh(f"{GC} > {log} 2>&1", timeout=1800),
        "gcops stream": lambda: stream(f"exec {GC} 2>&1"),
        "gcops no-parse": lambda: stream(f"exec {GC} 2>&1", parse=False),
        "openssh": lambda: subprocess.run(h.ssh_argv() + [f"{GC} 2>&1"], stdout=subprocess.DEVNULL, check=True,
                                          stdin=subprocess.DEVNULL, timeout=1800),
        "file then read": lambda: stream(f"{GC} > {log} 2>&1; cat {log}"),
        "stream via dd": lambda: stream(f"{GC} 2>&1 | dd bs=65536 iflag=fullblock status=none"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="GC output sink comparison")
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--workdir", default="/dev/shm", help="tmpfs by default (steady figures)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gcops-bench-sink-", dir=args.workdir))
    h = None
    try:
        harness.cleanup_stale()
        built = build(base / "src", repos=args.repos, kept=3, deleted=1)
        (base / "st").mkdir()
        h = harness.start_host("sink", storage_dir=base / "st", base_dir=base / "hosts",
                               client_key=harness.make_client_key(base / "key"))
        runs = variants(h, str(h.dir / "tmp" / "gc.log"))
        gc_s = {k: [] for k in runs}
        total_s = {k: [] for k in runs}
        for rep in range(args.reps):
            for name, fn in runs.items():
                shutil.rmtree(base / "st" / "docker", ignore_errors=True)
                subprocess.run(["cp", "-a", str(base / "src" / "docker"), str(base / "st" / "docker")], check=True)
                os.sync()
                probe = ClientProbe(str(netns.NETNS_DIR / h.netns), *built.kept[-1][:2], interval=args.interval).start()
                watch = ProcWatch(h._net_ino, interval=args.interval).start()
                probe.wait_steady()
                t0 = time.monotonic()
                fn()
                total_s[name].append(time.monotonic() - t0)
                probe.finish()
                gcs = [p for p in watch.finish() if p[0] == "garbage-collect"]
                gc_s[name].append(gcs[-1][3] - gcs[-1][2])
                print(f"[rep {rep + 1}] {name:16s} GC process {gc_s[name][-1]:.3f}s  total {total_s[name][-1]:.3f}s",
                      file=sys.stderr, flush=True)
        print(f"\nGC of {built.blobs} blobs, {built.garbage_blobs} garbage ({args.repos} repositories); "
              f"median of {args.reps}; nproc {os.cpu_count()}")
        ref = statistics.median(gc_s["file"])
        print(f"{'output goes to':18s}{'GC process':>12s}{'vs file':>9s}{'total*':>10s}   all GC process times")
        for name in runs:
            g = statistics.median(gc_s[name])
            print(f"{name:18s}{g:11.3f}s{g / ref:9.3f}{statistics.median(total_s[name]):9.3f}s   "
                  f"{[round(x, 3) for x in gc_s[name]]}")
        return 0
    except Exception:
        import traceback
        traceback.print_exc()
        return 1
    finally:
        if h is not None:
            h.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
