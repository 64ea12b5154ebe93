"""Support for the --mode concurrent tests: a GC the test can pace, a padded registry, tag checks.

`paced_registry` is a TEST FIXTURE: the real registry binary, with its GC's stdout in a one-page
pipe that the wrapper stops reading at chosen output lines until the test says go. The GC blocks
on its next write once the page (4 KiB) is full, so the test's pushes land at a position of the
GC's walk that is fixed by the pause line (give or take one page of output), not by timing.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

from tests.harness import images

REPO = Path(__file__).resolve().parents[2]

PACED = '''#!/usr/bin/python3
# TEST FIXTURE (gcops integration tests): the real registry binary, its GC output paced by the test.
import fcntl, os, re, subprocess, sys, time
CTL = {ctl!r}
def wait_go(name):
    open(os.path.join(CTL, "paused-" + name), "w").close()
    while not os.path.exists(os.path.join(CTL, "go-" + name)):
        time.sleep(0.005)
pauses = []
if os.path.exists(os.path.join(CTL, "pauses")):
    pauses = [p for p in open(os.path.join(CTL, "pauses")).read().splitlines() if p]
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)            # F_SETPIPE_SZ: one page
proc = subprocess.Popen(["/usr/bin/docker-registry"] + sys.argv[1:], stdout=w, stdin=subprocess.DEVNULL)
os.close(w)
src = os.fdopen(r, "rb", buffering=0)
n, done = 0, 0
while True:
    line = src.readline()
    if not line:
        break
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
    n += 1
    text = line.decode(errors="replace")
    while pauses and (pauses[0] == str(n) or (pauses[0].startswith("/") and re.search(pauses[0][1:], text))):
        pauses.pop(0)
        wait_go(str(done))
        done += 1
code = proc.wait()
if os.path.exists(os.path.join(CTL, "pause-at-end")):
    wait_go("end")
sys.exit(code)
'''


class PacedGC:
    """Control side of `paced_registry`: pauses to set, and waiting for each pause."""

    def __init__(self, tmp_path: Path):
        self.ctl = tmp_path / "paced-ctl"
        self.ctl.mkdir(exist_ok=True)
        self.binary = tmp_path / "paced-registry"
        self.binary.write_text(PACED.format(ctl=str(self.ctl)))
        self.binary.chmod(0o755)

    def arm(self, pauses: list[str], at_end: bool = False) -> None:
        for p in self.ctl.iterdir():
            p.unlink()
        (self.ctl / "pauses").write_text("".join(f"{p}\n" for p in pauses))
        if at_end:
            (self.ctl / "pause-at-end").write_text("")

    def wait_paused(self, name: str, give_up, timeout: float = 60) -> bool:
        """True once the GC is held at pause `name`; False when give_up() says the GC is over first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (self.ctl / f"paused-{name}").exists():
                return True
            if give_up():
                return False
            time.sleep(0.005)
        raise AssertionError(f"the paced GC never reached pause {name}")

    def go(self, name: str) -> None:
        (self.ctl / f"go-{name}").write_text("")


def build_padding(storage: Path, repos: int, seed: int = 7):
    """Registry content written straight in the storage layout (benchmarks/build_registry.py)."""
    spec = importlib.util.spec_from_file_location("gcops_bench_build", REPO / "benchmarks" / "build_registry.py")
    mod = sys.modules.get(spec.name)
    if mod is None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod          # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return mod.build(storage, repos=repos, kept=2, deleted=1, layers=3, seed=seed)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tag_problems(host, repos) -> list[str]:
    """Every tag of `repos` must resolve, with every manifest and blob it needs (bytes checked)."""
    problems = []
    for repo in repos:
        status, _, body = host.http("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            continue
        if status != 200:
            problems.append(f"{repo}: tags/list {status}")
            continue
        for tag in json.loads(body).get("tags") or []:
            problems += _image_problems(host, repo, tag)
    return problems


def _image_problems(host, repo: str, ref: str) -> list[str]:
    status, digest, ctype, body = images.get_manifest(host, repo, ref)
    if status != 200:
        return [f"{repo}:{ref} manifest {status}"]
    doc = json.loads(body)
    out = []
    if (doc.get("mediaType") or ctype) in images.LISTS:
        for child in doc["manifests"]:
            out += _image_problems(host, repo, child["digest"])
        return out
    for desc in [doc["config"], *doc["layers"]]:
        st, _, blob = host.http("GET", f"/v2/{repo}/blobs/{desc['digest']}")
        if st != 200 or _sha(blob) != desc["digest"]:
            out.append(f"{repo}:{ref} blob {desc['digest'][:19]} {st}")
    return out


def dry_run_eligible(host) -> set[str]:
    """The registry's own GC in dry-run: the blobs it would delete now."""
    out = host.sh("docker-registry garbage-collect --dry-run /etc/docker/registry/config.yml 2>&1",
                  timeout=120).stdout.decode()
    return {line.split(": ", 1)[1].strip() for line in out.splitlines()
            if line.startswith("blob eligible for deletion: ")}


class Pusher:
    """Seeded pushes of small images built from shared layer seeds (so layers can be reused)."""

    LAYER = 2048

    def __init__(self, host, tmp_path: Path, rng: random.Random):
        self.host, self.tmp, self.rng = host, tmp_path, rng
        self.n = 0
        self.pushed: list[dict] = []      # {repo, tag, layout, ltag, seeds}

    def push(self, repo: str, seeds: list[str], *, tag: str | None = None, layout: Path | None = None,
             ltag: str | None = None) -> dict:
        self.n += 1
        tag = tag or f"t{self.n}"
        if layout is None:
            ltag = f"l{self.n}"
            layout = images.build_layout(self.tmp / f"oci-{self.n}", ltag, seed=self.n, layer_seeds=seeds,
                                         layer_size=self.LAYER)
        img = images.push(self.host, layout, ltag, repo, dest_tag=tag)
        rec = {"repo": repo, "tag": tag, "layout": layout, "ltag": ltag, "seeds": seeds,
               "digest": img.manifest_digest, "digests": img.all_digests}
        self.pushed.append(rec)
        return rec

    def fresh_seeds(self, k: int = 2) -> list[str]:
        return [f"s{self.rng.randrange(10**9)}" for _ in range(k)]
