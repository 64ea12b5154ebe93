"""How long `gcops report` takes over a long history, on SQLite and on PostgreSQL (issue 20).

Fills each history with RUNS nightly runs of INSTANCES instances (real run documents, as
`gcops run` records them), then times the real `gcops report` command (a new process, so
Python start-up and imports count) for every format, REPS times, and prints the figures.
PostgreSQL is a real server started from Debian's binaries on a free loopback port
(tests/harness/postgres.py), reached over TCP with a password, like a shared history.

    python3 benchmarks/history_report.py [--runs 10000] [--instances 3] [--reps 3]

Goal: under 2 s per report over 10,000 runs. Exit 0 when the benchmark ran (goal met or
not, said on the RESULT line), 1 when it broke.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.report import machine  # noqa: E402
from gcops.state.history import SqliteHistory, db_path  # noqa: E402
from gcops.state.history.postgresql import PostgresHistory  # noqa: E402
from tests.harness.postgres import start_postgres  # noqa: E402

GOAL_SECONDS = 2.0
FORMATS = ("table", "json", "csv", "markdown", "html")


def runs(count: int, instances: int) -> list[dict]:
    """`count` nightly run documents, `instances` results each, some failed."""
    start = datetime(2000, 1, 1, 2, tzinfo=timezone.utc)
    docs = []
    for n in range(count):
        at = start + timedelta(days=n)
        results = []
        for i in range(instances):
            ok = (n + i) % 17 != 0
            before = 10_000_000_000 + n * 1000
            reclaimed = (n % 97 + 1) * 1_000_000 if ok else None
            results.append({
                "name": f"registry-{i}", "hosts": [f"reg{i}.example.com"], "playbook": "distribution",
                "status": "ok" if ok else "failed", "error": None if ok else "registry did not answer",
                "mode": "readonly", "delete_untagged": False, "storage_driver": "filesystem",
                "storage_bytes_before": before, "storage_bytes_after": before - reclaimed if ok else None,
                "reclaimed_bytes": reclaimed, "fs_used_bytes_before": 5 * before, "fs_used_bytes_after": None,
                "blobs_before": 4000, "blobs_after": 3900 if ok else None, "blobs_deleted": 100 if ok else None,
                "manifests_deleted": 3 if ok else None, "window_seconds": 12.5, "gc_seconds": 8.25,
                "duration_seconds": 20.0, "read_only_verified": True, "tags_deleted": []})
        good = [r for r in results if r["status"] == "ok"]
        docs.append({"run_id": f"{at:%Y%m%dT%H%M%SZ}-{n % 65536:04x}", "command": "run", "dry_run": False,
                     "started_at": f"{at:%Y-%m-%dT%H:%M:%SZ}",
                     "finished_at": f"{at + timedelta(minutes=3):%Y-%m-%dT%H:%M:%SZ}",
                     "exit_code": 0 if len(good) == instances else 1, "instances": results,
                     "totals": {"reclaimed_bytes": sum(r["reclaimed_bytes"] for r in good),
                                "instances_ok": len(good), "instances_failed": instances - len(good)}})
    return docs


def time_report(config: Path, fmt: str, reps: int, env: dict) -> tuple[list[float], list[float]]:
    """(wall times, CPU times user+sys) of `reps` runs of the command."""
    took, cpu = [], []
    for _ in range(reps):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "gcops", "--config", str(config), "report", "--format", fmt],
                              capture_output=True, env=env, cwd=str(REPO))
        took.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(f"gcops report --format {fmt} exited {proc.returncode}: {proc.stderr[-1000:]!r}")
    return took, cpu


def load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print("=== gcops report over a long history ===")
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    for line in machine():
        print("machine: " + line)
    docs = runs(args.runs, args.instances)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCOPS_")}
    env["PYTHONPATH"] = str(REPO)
    server = start_postgres()
    missed = []
    try:
        with tempfile.TemporaryDirectory(prefix="gcops-bench-history-") as tmp:
            tmp = Path(tmp)
            url = server.create_database("bench", "gcops", "bench-password")
            (tmp / "secret").write_text("bench-password\n")
            configs = {"sqlite": tmp / "sqlite.toml", "postgresql": tmp / "postgresql.toml"}
            configs["sqlite"].write_text(f'[gcops]\nstate_dir = "{tmp / "state"}"\n')
            configs["postgresql"].write_text(f'[gcops]\nstate_dir = "{tmp / "state-pg"}"\nhistory = "{url}"\n'
                                             f'history_password_file = "{tmp / "secret"}"\n')
            stores = {"sqlite": SqliteHistory(db_path(tmp / "state")),
                      "postgresql": PostgresHistory(url, "bench-password")}
            for name, store in stores.items():
                t0 = time.perf_counter()
                store.import_runs(docs, [])
                print(f"{name}: {args.runs:,} runs x {args.instances} instances stored in "
                      f"{time.perf_counter() - t0:.2f}s (one transaction)")
            print(f"\n`gcops report --format F` over all runs, new process each, median of {args.reps}: wall time "
                  f"(fastest-slowest) and CPU time user+sys (goal: wall < {GOAL_SECONDS:.1f}s); "
                  f"load average before: {load_average()}")
            print(f"{'format':10s}" + "".join(f"{name:>34s}" for name in stores))
            for fmt in FORMATS:
                cells = []
                for name in stores:
                    took, cpu = time_report(configs[name], fmt, args.reps, env)
                    med = statistics.median(took)
                    cells.append(f"{med:.3f}s ({min(took):.3f}-{max(took):.3f}) cpu {statistics.median(cpu):.3f}s")
                    if med >= GOAL_SECONDS:
                        missed.append(f"{name} {fmt} {med:.3f}s")
                print(f"{fmt:10s}" + "".join(f"{c:>34s}" for c in cells))
            print(f"load average after: {load_average()} (other work on the machine slows the wall times)")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "gcops", "--version"], capture_output=True, env=env, check=True)
            print(f"(for scale: `gcops --version` takes {time.perf_counter() - t0:.3f}s)")
    finally:
        server.close()
    print("RESULT: " + ("goal met" if not missed else "GOAL MISSED: " + "; ".join(missed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
