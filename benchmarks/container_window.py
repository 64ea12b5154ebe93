"""gcops on a containerised registry against the host-package path, on the same store.

    sudo .venv/bin/python benchmarks/container_window.py --repos 1000 --rounds 3

Builds one registry store (benchmarks/build_registry.py), then, --rounds times, copies it fresh into
(a) a test host (tests/harness: network + mount namespaces, the Debian docker-registry package's binary
under the systemctl stand-in; `gcops run` with host = "local" inside it) and (b) a `registry:2`-shaped
container on podman (tests/harness/containers.py; `gcops run` with engine = docker through podman's API,
and engine = podman), and prints, per path, the median write-refused window (`window_seconds`: from the
enter script's first refused write to the restore's first accepted one, engine-host clock), the GC's
time and reclaimed_bytes against the storage's real drop (`du -sB1`). Needs root, podman, skopeo.
"""
from __future__ import annotations

import argparse
import json
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
from tests.harness import containers, hosts as harness  # noqa: E402
from tests.harness.gcops_cli import gcops_argv, gcops_env, instance_block, run_gcops, toml_str, write_config  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sB1", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def fresh_copy(src: Path, storage: Path) -> None:
    shutil.rmtree(storage / "docker", ignore_errors=True)
    subprocess.run(["cp", "-a", str(src / "docker"), str(storage / "docker")], check=True)


def figures(doc: dict, drop: int) -> dict:
    inst = doc["instances"][0]
    if inst["status"] != "ok":
        raise RuntimeError(f"gcops failed: {inst['error']}")
    return {"window": inst["window_seconds"], "gc": inst["gc_seconds"], "reclaimed": inst["reclaimed_bytes"],
            "real_drop": drop}


def run_host_package(h, src: Path, work: Path) -> dict:
    fresh_copy(src, h.storage_dir)
    h.sh("systemctl restart docker-registry")
    before = du(h.storage_dir)
    config = write_config(work / "host.toml", [instance_block("pkg", "local")], state_dir=work / "state-host")
    proc = run_gcops("--config", str(config), "run", "--json", host=h, timeout=1800)
    return figures(json.loads(proc.stdout), before - du(h.storage_dir))


def run_container(reg, engine: str, src: Path, work: Path) -> dict:
    fresh_copy(src, reg.storage_dir)
    subprocess.run(["podman", "restart", "-t", "2", reg.name], check=True, capture_output=True)
    reg.wait_ready()
    before = du(reg.storage_dir)
    block = "\n".join(["[[instance]]", 'name = "ctr"', 'host = "local"', 'playbook = "distribution"',
                       f"engine = {toml_str(engine)}", f"container = {toml_str(reg.name)}"])
    config = write_config(work / f"{engine}.toml", [block], state_dir=work / f"state-{engine}")
    proc = subprocess.run(gcops_argv("--config", str(config), "run", "--json"), capture_output=True, text=True,
                          env=gcops_env(), timeout=1800)
    return figures(json.loads(proc.stdout), before - du(reg.storage_dir))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--kept", type=int, default=2)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp", help="where the stores go (default /var/tmp, a disk)")
    args = ap.parse_args()
    if os.geteuid() != 0 or containers.missing_tools():
        print(containers.missing_tools() or "needs root", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="gcops-ctr-bench-", dir=args.workdir))
    service = h = reg = None
    try:
        harness.cleanup_stale()
        service = containers.PodmanService(base)
        os.environ.update(service.env)
        log(f"building a store of {args.repos} repositories")
        built = build(base / "src", repos=args.repos, kept=args.kept, deleted=1, layers=args.layers)
        log(f"{built.blobs} blobs, {built.garbage_blobs} garbage ({built.garbage_bytes} bytes)")
        h = harness.start_host("ctrbench", storage_dir=base / "host-storage", base_dir=base / "hosts",
                               client_key=harness.make_client_key(base / "key"))
        image = containers.build_registry_image(base)
        reg = containers.start_registry(image, f"gcops-bench-{os.getpid()}", base / "ctr")
        results: dict[str, list[dict]] = {"host package": [], "container (docker CLI)": [],
                                          "container (podman CLI)": []}
        for r in range(args.rounds):
            for label in list(results)[r % 3:] + list(results)[:r % 3]:   # order rotates per round
                log(f"round {r + 1}/{args.rounds}: {label}")
                if label == "host package":
                    rec = run_host_package(h, base / "src", base)
                else:
                    rec = run_container(reg, "docker" if "docker" in label else "podman", base / "src", base)
                results[label].append(rec)
                log(f"  window {rec['window']:.3f} s, gc {rec['gc']:.3f} s, reclaimed {rec['reclaimed']} "
                    f"real drop {rec['real_drop']}")
        host_window = statistics.median(x["window"] for x in results["host package"])
        print(f"\n{built.blobs} blobs ({args.repos} repositories, {built.garbage_blobs} garbage), "
              f"median of {args.rounds} rounds, stores under {base}")
        print("| path | window (median) | x host package | GC (median) | reclaimed vs real drop (worst) |")
        print("|---|---|---|---|---|")
        for label, recs in results.items():
            window = statistics.median(x["window"] for x in recs)
            worst = max(abs(x["reclaimed"] - x["real_drop"]) / x["real_drop"] for x in recs)
            print(f"| {label} | {window:.3f} s | {window / host_window:.2f} | "
                  f"{statistics.median(x['gc'] for x in recs):.3f} s | {worst * 100:.2f} % |")
        return 0
    finally:
        if reg is not None:
            reg.stop()
        if h is not None:
            h.close()
        if service is not None:
            service.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
