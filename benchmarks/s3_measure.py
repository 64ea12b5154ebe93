"""How fast gcops measures a registry bucket, against a plain sequential ListObjectsV2 walk.

Real parts: moto's S3 server as its own process, filled with a registry-shaped
key space by boto3 in threads; a delaying proxy (tests/harness/s3proxy.py)
adding `--delay` seconds to every request, since these machines have no netem.
Both walks run in child processes through the same proxy, side by side, one
after the other, `--rounds` times; each child reports its time, its list
requests, its totals and its peak RSS (VmHWM).

Then the bucket grows `--factor` times and gcops' walk runs again: peak RSS
must stay flat (<= 1.25x) while the objects grow 4x.

    python3 benchmarks/s3_measure.py                    # 12.5k then 50k objects, 100 ms per request
    python3 benchmarks/s3_measure.py --objects 5000 --factor 2 --rounds 1   # quick

Exit 0 when the benchmark ran (goals reported, "GOAL MISSED" when one is), 1 when it broke.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness.s3proxy import DelayProxy  # noqa: E402
from tests.harness.s3server import start_s3_server  # noqa: E402

BUCKET = "bench"
ROOT = "registry/"
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from gcops.storage.s3_listing import list_sequential, list_storage
import boto3
from botocore.config import Config
kind, url, bucket, root, concurrency = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
if kind == "gcops":     # gcops' own client factory
    from gcops.storage.s3 import S3Settings, make_client
    client = make_client(S3Settings(bucket=bucket, region="us-east-1", endpoint_url=url, rootdirectory=root.strip("/"),
                                    path_style=True, verify_tls=False, access_key="testing", secret_key="testing",
                                    concurrency=concurrency))
else:                   # a plain boto3 client, as a script would make it
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}))
t0 = time.monotonic()
got = list_storage(client, bucket, root, concurrency=concurrency) if kind == "gcops" else list_sequential(client, bucket, root)
seconds = time.monotonic() - t0
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"kind": kind, "seconds": seconds, "requests": got.requests, "objects": got.objects,
                  "bytes": got.total_bytes, "blobs": got.blobs, "peak_rss_kib": hwm}))
"""


def registry_keys(start: int, count: int):
    """Keys and sizes shaped like distribution's layout: per image 3 layers + config + manifest blobs,
    their _layers links, a revision link and a tag (current + index link): 12 objects."""
    made = 0
    image = start
    while made < count:
        repo = f"group{image % 7}/app{image % 97}"
        digests = [hashlib.sha256(f"{image}:{j}".encode()).hexdigest() for j in range(5)]
        v2 = f"{ROOT}docker/registry/v2/"
        for j, d in enumerate(digests):
            yield f"{v2}blobs/sha256/{d[:2]}/{d}/data", 100 + (image * 31 + j * 7) % 900
        for d in digests[:4]:
            yield f"{v2}repositories/{repo}/_layers/sha256/{d}/link", 71
        m = digests[4]
        yield f"{v2}repositories/{repo}/_manifests/revisions/sha256/{m}/link", 71
        yield f"{v2}repositories/{repo}/_manifests/tags/t{image}/current/link", 71
        yield f"{v2}repositories/{repo}/_manifests/tags/t{image}/index/sha256/{m}/link", 71
        made += 12
        image += 1


def fill(server, first_image: int, objects: int, threads: int = 16) -> int:
    """Put `objects` more objects (boto3, threads); return the next image number."""
    client = server.client()
    keys = list(registry_keys(first_image, objects))
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=b"x" * kv[1]), keys))
    print(f"  filled {len(keys)} objects in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return first_image + len(keys) // 12


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def walk(kind: str, url: str, concurrency: int, server_pid: int) -> dict:
    """One walk in a child process; with the S3 server's CPU seconds spent meanwhile (`server_cpu`)."""
    before = cpu_seconds(server_pid)
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), kind, url, BUCKET, ROOT, str(concurrency)],
                         capture_output=True, text=True, check=True, timeout=3600,
                         env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"})
    return {**json.loads(out.stdout), "server_cpu": cpu_seconds(server_pid) - before}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--objects", type=int, default=12500, help="objects of the first bucket (default 12500)")
    ap.add_argument("--factor", type=int, default=4, help="growth of the bucket for the RSS check (4)")
    ap.add_argument("--delay", type=float, default=0.1, help="seconds the proxy adds per request (0.1)")
    ap.add_argument("--concurrency", type=int, default=16, help="gcops' parallel list requests (16)")
    ap.add_argument("--rounds", type=int, default=2, help="side-by-side rounds on the big bucket (2)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gcops-s3bench-") as tmp:
        server = start_s3_server(Path(tmp))
        proxy = DelayProxy(server.port, delay=args.delay)
        try:
            server.client().create_bucket(Bucket=BUCKET)
            image = fill(server, 0, args.objects)
            pid = server.proc.pid
            small = walk("gcops", proxy.url, args.concurrency, pid)
            fill(server, image, args.objects * (args.factor - 1))
            rows, floor = [], []
            for _ in range(args.rounds):     # interleaved: the machine's load drifts between rounds
                rows.append(walk("sequential", proxy.url, 1, pid))
                rows.append(walk("gcops", proxy.url, args.concurrency, pid))
                # the same walks straight to the server (no added latency): what the server itself costs
                floor.append(walk("sequential", server.url, 1, pid))
                floor.append(walk("gcops", server.url, args.concurrency, pid))
            # the server's own CPU for one list request that returns nothing (it still walks the bucket)
            client, probes = server.client(), 20
            empty = cpu_seconds(pid)
            for _ in range(probes):
                client.list_objects_v2(Bucket=BUCKET, Prefix=ROOT + "no-such-prefix/", MaxKeys=1000)
            empty = (cpu_seconds(pid) - empty) / probes
        finally:
            proxy.close()
            server.stop()
    big = [r for r in rows if r["kind"] == "gcops"]
    seq = [r for r in rows if r["kind"] == "sequential"]
    if any((r["objects"], r["bytes"], r["blobs"]) != (seq[0]["objects"], seq[0]["bytes"], seq[0]["blobs"])
           for r in rows):
        print("totals differ between walks: " + json.dumps(rows), file=sys.stderr)
        return 1
    best = min(r["seconds"] for r in big)
    base = min(r["seconds"] for r in seq)
    speedup = base / best
    rss_growth = max(r["peak_rss_kib"] for r in big) / small["peak_rss_kib"]
    print(f"\nbucket: {seq[0]['objects']} objects ({seq[0]['blobs']} blobs, {seq[0]['bytes']} bytes) under "
          f"s3://{BUCKET}/{ROOT}, +{args.delay * 1000:.0f} ms per request")
    print(f"{'walk':<16}{'seconds':>8}{'list requests':>15}{'peak RSS MiB':>14}{'server CPU s':>14}")
    for r in rows + floor:
        name = r["kind"] + (" +0ms" if r in floor else "")
        print(f"{name:<16}{r['seconds']:>8.2f}{r['requests']:>15}{r['peak_rss_kib'] / 1024:>14.1f}"
              f"{r['server_cpu']:>14.2f}")
    best_floor = {k: min(r["seconds"] for r in floor if r["kind"] == k) for k in ("sequential", "gcops")}
    print(f"{'gcops small':<12}{small['seconds']:>10.2f}{small['requests']:>15}{small['peak_rss_kib'] / 1024:>14.1f}"
          f"   ({small['objects']} objects)")
    print(f"\nspeed-up (best of each): {speedup:.1f}x  goal >= 4x: {'ok' if speedup >= 4 else 'GOAL MISSED'}")
    print(f"straight to the server (+0 ms): sequential {best_floor['sequential']:.2f}s, gcops "
          f"{best_floor['gcops']:.2f}s: what is left once latency is hidden is the server's own time per key")
    g = min(big, key=lambda r: r["seconds"])
    pages = -(-seq[0]["objects"] // 1000)
    # what the server's CPU costs any walk: a fixed cost per request (measured: a request that returns
    # nothing) and a cost per key returned (the rest of gcops' server CPU); the fewest requests are one
    # per 1000 keys
    least = g["server_cpu"] - max(0, g["requests"] - pages) * empty
    print(f"the server (one process) was busy {g['server_cpu']:.2f} s of gcops' {g['seconds']:.2f} s walk: "
          f"{empty * 1000:.0f} ms of CPU a list request even when it returns nothing (moto walks the whole "
          f"bucket each time), {(g['server_cpu'] - g['requests'] * empty) / seq[0]['objects'] * 1e6:.0f} us a "
          f"key returned; the fewest requests possible ({pages}, 1000 keys each) would still cost it "
          f"{least:.2f} s, so no walk can beat {base / least:.1f}x the sequential one on this server")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"peak RSS {small['objects']} -> {seq[0]['objects']} objects: {rss_growth:.2f}x  goal <= 1.25x: "
          f"{'ok' if rss_growth <= 1.25 else 'GOAL MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
