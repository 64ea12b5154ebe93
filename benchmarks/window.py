"""gcops performance benchmark: read-only window vs the manual procedure, memory, measurement time.

    sudo .venv/bin/python benchmarks/window.py            # or: python3 benchmarks/window.py
    python3 benchmarks/window.py --repos 200 --reps 3     # a quicker, smaller run

Builds two registries (garbage G, and 4x G with the same live images), starts four test hosts
(tests/harness: network + mount namespaces, real sshd, real docker-registry 2.8.2), a pair per
registry, then, --rounds times, resets both twins to a fresh copy and runs the manual procedure
on twin A and `gcops run` over SSH on twin B while a client inside the host polls the registry.
Then times gcops' storage measurement against du + find. See benchmarks/README.md.
Exit status: 0 when the benchmark ran (goals missed or not), 1 when it broke.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from build_registry import BuiltRegistry, build  # noqa: E402
from measure_time import compare  # noqa: E402
from probe import ClientProbe, ProcWatch, read_view, write_view  # noqa: E402
from procedures import run_gcops, run_manual  # noqa: E402
from report import print_report  # noqa: E402
from tests.harness import hosts as harness, images, netns  # noqa: E402

CONFIG = "/etc/docker/registry/config.yml"
V2 = "docker/registry/v2"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def blob_count(root: Path) -> int:
    return sum(len(os.listdir(d)) for d in (root / V2 / "blobs" / "sha256").iterdir())


def reset_tree(src: Path, host) -> float:
    """Make host's storage an exact copy of src (cp -a), restart its registry; return copy seconds.

    Every run starts from such a copy: twins A and B are made the same way (a freshly written tree
    and its copy do not GC at the same speed), and each round starts from the same garbage."""
    dest = host.storage_dir / "docker"
    shutil.rmtree(dest, ignore_errors=True)
    t0 = time.monotonic()
    subprocess.run(["cp", "-a", str(src / "docker"), str(dest)], check=True)
    seconds = time.monotonic() - t0
    host.sh("systemctl restart docker-registry")
    return seconds


def verify(host, built: BuiltRegistry, checks: list[str]) -> None:
    """The real registry serves what was written, and its own GC parses it (dry run)."""
    for repo, tag, digest, mtype in built.kept:
        status, got, ctype, body = images.get_manifest(host, repo, tag)
        assert status == 200 and got == digest and ctype == mtype, (repo, tag, status, got, ctype)
        doc = json.loads(body)
        for desc in (doc["config"], doc["layers"][-1]):
            st, _, blob = host.http("GET", f"/v2/{repo}/blobs/{desc['digest']}")
            assert st == 200 and images._sha(blob) == desc["digest"], (repo, desc, st)
    for repo, digest in built.deleted:
        status = images.get_manifest(host, repo, digest)[0]
        assert status == 404, f"deleted manifest {repo}@{digest} answered {status}"
    pulled = [k for k in (built.kept[0], built.kept[1]) if images.pulls(host, k[0], k[1])]
    assert len(pulled) == 2, f"skopeo pull failed: {host.last_pull_error}"
    n_repos, last = 0, ""
    while True:          # the catalog pages by at most 1000 (the registry's default maximum)
        st, hdrs, body = host.http("GET", f"/v2/_catalog?n=1000{'&last=' + last if last else ''}")
        assert st == 200, (st, body[:200])
        names = json.loads(body)["repositories"]
        n_repos += len(names)
        if "Link" not in hdrs or not names:
            break
        last = names[-1]
    assert n_repos == built.repos, (n_repos, built.repos)
    p = host.sh(f"docker-registry garbage-collect --dry-run {CONFIG}", timeout=600)
    m = re.search(rb"^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible", p.stdout, re.M)
    assert m and int(m.group(2)) == built.garbage_blobs, (m and m.group(0), built.garbage_blobs)
    checks.append(f"{host.name}: {len(built.kept)} tags GET manifest+config+layer ok (schema2 and OCI), "
                  f"{len(built.deleted)} deleted manifests 404, skopeo pulled 2, catalog {n_repos} repos, "
                  f"garbage-collect --dry-run: '{m.group(0).decode()}'")


def observed(host, probe_tag: tuple[str, str], fn, interval: float) -> dict:
    """Run fn() while a client polls the host's registry and /proc is watched."""
    os.sync()   # no writeback of earlier trees competing with this run
    probe = ClientProbe(str(netns.NETNS_DIR / host.netns), *probe_tag, interval=interval).start()
    watch = ProcWatch(host._net_ino, interval=interval).start()
    try:
        probe.wait_steady()
        rec = fn()
        probe.wait_steady()
    finally:
        probe.finish()
        procs = watch.finish()
    rec.update(write=write_view(probe.writes), read=read_view(probe.reads), procs=procs)
    return rec


def after_checks(host, built: BuiltRegistry, who: str, checks: list[str]) -> None:
    left = blob_count(host.storage_dir)
    want = built.blobs - built.garbage_blobs
    assert left == want, f"{host.name} ({who}): {left} blobs left, expected {want}"
    assert images.pulls(host, built.kept[0][0], built.kept[0][1]), host.last_pull_error
    assert not (host.storage_dir / V2 / "repositories" / "bench-probe").exists(), "write probe stored something"
    if not any(c.startswith(f"{host.name} after {who}") for c in checks):
        checks.append(f"{host.name} after {who}: {left} blobs left as expected, kept tag pulls (every round)")


def _fstype(path: Path) -> str:
    """The type of the filesystem holding path (longest matching mount point in /proc/mounts)."""
    best, kind = "", "?"
    for line in open("/proc/mounts"):
        _, mnt, fstype = line.split()[:3]
        if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
            best, kind = mnt, fstype
    return kind


def _on_tmpfs(path: Path) -> bool:
    return _fstype(path) in ("tmpfs", "ramfs")


class _SkipMeasure(Exception):
    """--no-measure: the run is over before the storage measurement timing."""


def _slug(label: str) -> str:
    return label.lower().replace(" repos", "r").replace(" ", "")


def _who(mode: str) -> str:
    """The record key of a gcops mode: "gcops" (readonly, as before) or the mode's name."""
    return "gcops" if mode == "readonly" else mode


def main() -> int:
    ap = argparse.ArgumentParser(description="gcops read-only window / memory / measurement benchmark")
    ap.add_argument("--repos", type=int, default=1000, help="repositories per registry (default 1000)")
    ap.add_argument("--factor", type=int, default=4, help="garbage multiplier of the second pair (default 4)")
    ap.add_argument("--sizes", default="",
                    help="instead of G and factor x G: registries of these many repositories, comma-separated "
                         "(e.g. 1000,2500), each with --kept tags kept, 1 deleted, --layers own layers per image")
    ap.add_argument("--kept", type=int, default=3, help="tags kept per repository (default 3)")
    ap.add_argument("--layers", type=int, default=5, help="own layers per image (default 5)")
    ap.add_argument("--modes", default="readonly",
                    help="gcops modes run against the manual procedure, comma-separated: readonly, concurrent "
                         "(default readonly); each runs on the gcops twin, from a fresh copy")
    ap.add_argument("--no-measure", action="store_true", help="skip the storage measurement timing")
    ap.add_argument("--interval", type=float, default=0.01, help="client poll interval, seconds (default 0.01)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each procedure on each pair, from a fresh copy each time, order alternating (default 3)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the measurement timing (default 5)")
    ap.add_argument("--workdir", default="/dev/shm",
                    help="where the registries and hosts go (default /dev/shm, a tmpfs: steady figures; "
                         "on a disk the GC time varies by +-30%% run to run)")
    ap.add_argument("--measure-dir", default="/var/tmp",
                    help="a disk directory: the storage measurement is timed on a copy there (default /var/tmp)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmark needs root (network and mount namespaces)", file=sys.stderr)
        return 1
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="gcops-bench-", dir=args.workdir))
    started_hosts: list = []
    cleanup: list[Path] = [base]
    run: dict = {"command": " ".join([sys.executable] + sys.argv), "interval": args.interval, "checks": [],
                 "rounds": args.rounds,
                 "storage": f"{base} ({_fstype(base)})",
                 "built": {}, "pairs": {}, "memory": {}}
    broken = False
    try:
        harness.cleanup_stale()
        key = harness.make_client_key(base / "client-key")
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if args.sizes:
            pairs = {f"{n} repos": dict(deleted=1, repos=int(n)) for n in args.sizes.split(",")}
        else:
            pairs = {"G": dict(deleted=1), f"{args.factor}G": dict(deleted=args.factor)}
        builds, host = {}, {}
        for i, (label, kw) in enumerate(pairs.items()):
            log(f"building registry {label} ({args.repos} repositories)")
            kw = {"repos": args.repos, **kw}
            builds[label] = build(base / f"{_slug(label)}-src", kept=args.kept, layers=args.layers, seed=i, **kw)
            run["built"][label] = asdict(builds[label])
            for side in ("a", "b"):
                name = f"{_slug(label)[:10]}{side}"
                (base / name).mkdir()
                log(f"starting test host {name}")
                h = harness.start_host(name, storage_dir=base / name, base_dir=base / "hosts", client_key=key)
                started_hosts.append(h)
                host[(label, side)] = h
        log("checking the built registry with the real registry")
        first = list(pairs)[0]
        run["built"][first]["copy_seconds"] = reset_tree(base / f"{_slug(first)}-src", host[(first, "a")])
        verify(host[(first, "a")], builds[first], run["checks"])
        run["modes"] = modes
        for label in pairs:
            run["pairs"][label] = {"order": [], "manual": [], **{_who(m): [] for m in modes}}
            run["memory"][label] = []
        for r in range(args.rounds):
            for i, label in enumerate(pairs):
                built, pair = builds[label], run["pairs"][label]
                whos = ["manual"] + [_who(m) for m in modes]
                shift = (i + r) % len(whos)
                order = whos[shift:] + whos[:shift]
                pair["order"].append("/".join(order))
                for who in order:
                    h = host[(label, "a" if who == "manual" else "b")]
                    copy_s = reset_tree(base / f"{_slug(label)}-src", h)
                    run["built"][label].setdefault("copy_seconds", copy_s)
                    log(f"round {r + 1}/{args.rounds} {label}: {who} on {h.name}")
                    mode = "concurrent" if who == "concurrent" else "readonly"
                    fn = (lambda h=h: run_manual(h)) if who == "manual" else \
                         (lambda h=h, label=label, r=r, mode=mode: run_gcops(h, base / f"gcops-{_slug(label)}-{r}-{mode}",
                                                                             mode=mode))
                    rec = observed(h, tuple(built.kept[-1][:2]), fn, args.interval)
                    after_checks(h, built, who, run["checks"])
                    pair[who].append(rec)
                g = pair[_who(modes[0])][-1]
                run["memory"][label].append({
                    "maxrss": g["maxrss"], "rss_sampled_peak": g["rss_sampled_peak"], "rss_samples": g["rss_samples"],
                    "blobs_deleted": g["instance"]["blobs_deleted"],
                    "gc_lines": next((e.get("lines") for e in g["events"] if e.get("event") == "gc_done"), 0) or 0})
                if g["instance"]["blobs_deleted"] != built.garbage_blobs:
                    run["checks"].append(f"WARNING gcops reported {g['instance']['blobs_deleted']} blobs deleted, "
                                         f"{built.garbage_blobs} were garbage")
        last = list(pairs)[-1]
        h = host[(last, "b")]
        if args.no_measure:
            raise _SkipMeasure
        tree = h.storage_dir
        if _on_tmpfs(tree):    # cold cache means nothing on tmpfs: time it on a disk copy of the same tree
            disk = Path(tempfile.mkdtemp(prefix="gcops-bench-", dir=args.measure_dir))
            cleanup.append(disk)
            subprocess.run(["cp", "-a", str(tree), str(disk / "tree")], check=True)
            tree = disk / "tree"
        log(f"timing the storage measurement on {tree} ({_fstype(tree)}), inside host {h.name}")
        run["measure"] = compare(h, str(tree), reps=args.reps)
        run["measure"]["where"] = f"{tree} ({_fstype(tree)})"
    except _SkipMeasure:
        run["measure"] = None
    except Exception:
        broken = True
        traceback.print_exc()
    finally:
        for h in reversed(started_hosts):
            try:
                h.close()
            except Exception as exc:  # close every host even if one fails
                broken = True
                print(f"closing {h.name} failed: {exc}", file=sys.stderr)
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)
    if broken:
        print("BENCHMARK BROKEN (see the traceback above); no figures", file=sys.stderr)
        return 1
    run["total_seconds"] = time.monotonic() - started
    print_report(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
