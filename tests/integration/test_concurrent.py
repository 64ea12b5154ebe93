"""--mode concurrent on a real registry: nothing lost under concurrent pushes, nothing left behind (issue 13).

Pushes land while the registry's own GC dry-run walks the storage, at positions of its walk the
seed chooses (the GC is paced: see concurrent_support.py), and after it; one push races the
entry into read-only. Reproduce a round with GCOPS_CONCURRENT_SEED=<seed>.
"""
from __future__ import annotations

import os
import random
import threading

import pytest

from gcops.maintenance.concurrent_sweep import ConcurrentCollection, work_dir
from gcops.transport.hosts import SSHSettings
from gcops.transport.ssh import SSHHost
from gcops.registry.config_file import with_read_only
from tests.harness import images
from tests.integration.concurrent_support import PacedGC, Pusher, build_padding, dry_run_eligible, tag_problems
from tests.integration.conftest import wait_for, write_probe

SEED = int(os.environ.get("GCOPS_CONCURRENT_SEED", "1313"))
ROUNDS = int(os.environ.get("GCOPS_CONCURRENT_ROUNDS", "20"))
ROOT = "/var/lib/docker-registry"
CONFIG = "/etc/docker/registry/config.yml"
# interleaved with the padding's group00/service-0000 ... group23/service-0023 in the GC's walk
REPOS = ["group03/app", "group11/web", "group19/api", "group23/zz"]
KINDS = ["reuse_same", "reuse_other", "old_manifest", "retag_live", "fresh", "index"]


def ssh_to(h) -> SSHHost:
    return SSHHost(h.address, SSHSettings(user="root", port=22, identity_file=h.client_key,
                                          known_hosts=h.known_hosts, host_key_policy="strict", sudo=False,
                                          connect_timeout=10))


def enter_read_only(h) -> bytes:
    """The window as gcops makes it: read-only config, restart, a write answers 405."""
    original = h.config_file.read_bytes()
    h.config_file.write_bytes(with_read_only(original))
    h.sh("systemctl restart docker-registry")
    assert write_probe(h) == 405
    return original


def leave(h, original: bytes) -> None:
    h.config_file.write_bytes(original)
    h.sh("systemctl restart docker-registry")
    wait_for(lambda: write_probe(h) == 400, 15, "writes accepted again")


class Model:
    """What the test pushed: live images (tag resolves) and garbage ones (their manifest deleted)."""

    def __init__(self, pusher: Pusher):
        self.p = pusher
        self.live: list[dict] = []
        self.garbage: list[dict] = []
        self.recent: list[dict] = []     # pushed since the last round began

    def push(self, repo, seeds, **kw) -> dict:
        rec = self.p.push(repo, seeds, **kw)
        self.live.append(rec)
        self.recent.append(rec)
        return rec

    def delete(self, rec) -> None:
        digest = images.delete_tag(self.p.host, rec["repo"], rec["tag"])
        gone = [r for r in self.live if r["repo"] == rec["repo"] and r["digest"] == digest]
        self.live = [r for r in self.live if r not in gone]
        self.garbage += gone

    def act(self, kind: str, rng: random.Random) -> str:
        """One client push of `kind`, done now; gives what it did."""
        what, push = self.plan(kind, rng)
        push()
        return what

    def plan(self, kind: str, rng: random.Random):
        """(description, push()) of one client push of `kind`; push() may be called again (a retry)."""
        if kind in ("reuse_same", "reuse_other", "old_manifest") and self.garbage:
            g = rng.choice(self.garbage)
            self.garbage.remove(g)            # what it reuses is live again
            if kind == "old_manifest":        # the very manifest that was deleted, under a new tag
                tag = f"o{self.p.n}-{rng.randrange(10**6)}"
                return (f"old manifest of {g['repo']}:{g['tag']} as {tag}",
                        lambda: self.push(g["repo"], g["seeds"], layout=g["layout"], ltag=g["ltag"], tag=tag))
            repo = g["repo"] if kind == "reuse_same" else rng.choice([r for r in REPOS if r != g["repo"]])
            seeds = g["seeds"][:1] + self.p.fresh_seeds(1) if rng.random() < 0.5 else g["seeds"]
            return f"{kind}: garbage layers of {g['repo']}:{g['tag']} into {repo}", lambda: self.push(repo, seeds)
        if kind == "retag_live" and self.live:
            v = rng.choice(self.live)
            return (f"retag {v['repo']}:{v['tag']}",
                    lambda: self.push(v["repo"], v["seeds"], layout=v["layout"], ltag=v["ltag"]))
        repo = rng.choice(REPOS)
        if kind == "index":
            n = self.p.n = self.p.n + 1
            layout = images.build_multiarch_layout(self.p.tmp / f"idx-{n}", "i", seed=10_000 + n,
                                                   layer_size=Pusher.LAYER)

            def push_index():
                img = images.push(self.p.host, layout, "i", repo, all_platforms=True, dest_tag=f"idx{n}")
                self.recent.append({"digests": img.all_digests})
            return f"index {repo}:idx{n}", push_index
        seeds = self.p.fresh_seeds()
        return f"fresh image into {repo}", lambda: self.push(repo, seeds)


def run_round(h, ssh, paced: PacedGC, model: Model, r: int) -> dict:
    rng = random.Random(f"{SEED}:{r}")
    model.recent = []
    for _ in range(rng.randint(1, 2)):            # new garbage since the last round
        if len(model.live) > len(REPOS):
            model.delete(rng.choice(model.live))
    out = h.sh(f"docker-registry garbage-collect --dry-run {CONFIG} 2>&1").stdout.decode().splitlines()
    before = {line.split(": ", 1)[1] for line in out if line.startswith("blob eligible for deletion: ")}
    kinds = [rng.choice(KINDS[:3])] + [rng.choice(KINDS) for _ in range(rng.randint(1, 3))]
    rng.shuffle(kinds)
    pauses = sorted(rng.sample(range(1, len(out) + len(out) // 4), len(kinds)))
    paced.arm([str(p) for p in pauses], at_end=True)
    col = ConcurrentCollection(ssh, storage_root=ROOT, workdir=work_dir(f"{CONFIG.rsplit('/', 1)[0]}/.gcops",
                                                                         f"r{r}"),
                               run_id=f"r{r}", gc_dry_run=f"{paced.binary} garbage-collect {CONFIG} --dry-run")
    errors: list[BaseException] = []

    def mark():
        try:
            col.mark()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
    marking = threading.Thread(target=mark)
    marking.start()
    done = []
    try:
        at_end = False
        for i, kind in enumerate(kinds):
            if not at_end and not paced.wait_paused(str(i), give_up=lambda: (paced.ctl / "paused-end").exists()):
                at_end = True                    # the walk ended first: the rest lands after the mark
            done.append(("after mark: " if at_end else f"at GC line {pauses[i]}: ") + model.act(kind, rng))
            if not at_end:
                paced.go(str(i))
        paced.wait_paused("end", give_up=lambda: bool(errors))
    finally:
        paced.go("end")
        for i in range(len(kinds)):
            paced.go(str(i))
        marking.join(120)
    assert not errors, errors
    candidates = set((h.config_file.parent / ".gcops" / f"concurrent-r{r}" / "candidates").read_text().split())
    # blobs the registry's own dry-run called eligible that pushes during the mark made live
    rescued = candidates & set().union(*(rec["digests"] for rec in model.recent))
    # a client pushes while the registry goes read-only: it may fail, then retries after the window
    racing, racing_push = model.plan(rng.choice(KINDS[:3] + ["fresh"]), rng)
    model.recent = []                            # blobs the racing push makes live may be swept before it
    raced: list = []

    def race():
        try:
            racing_push()
            raced.append(racing)
        except Exception as exc:  # refused by the window: the client retries after it
            raced.append(exc)
    racer = threading.Thread(target=race)
    racer.start()
    original = enter_read_only(h)
    racer.join(120)
    try:
        outcome = col.collect()
    finally:
        leave(h, original)
        col.cleanup()
    if isinstance(raced[0], Exception):
        racing_push()                            # the client's next action: its retry succeeds
        racing = f"{racing}, refused, then retried after the window"
    done.append("racing the window: " + racing)
    problems = tag_problems(h, REPOS)
    assert not problems, (f"seed {SEED} round {r}", done, problems)
    left = dry_run_eligible(h) & before
    assert not left, (f"seed {SEED} round {r}: garbage left behind", sorted(left)[:5], done)
    return {"swept": outcome.sweep.swept, "spared": outcome.sweep.spared, "links": outcome.delta.links,
            "rescued": len(rescued), "before": len(before), "done": done}


def test_concurrent_rounds_lose_nothing_and_leave_nothing(host_factory, tmp_path):
    storage = tmp_path / "storage"
    padding = build_padding(storage, repos=24)
    h = host_factory("conc", storage_dir=storage)
    paced = PacedGC(tmp_path)
    model = Model(Pusher(h, tmp_path, random.Random(SEED)))
    for repo in REPOS:
        for _ in range(2):
            model.push(repo, model.p.fresh_seeds())
        model.delete(model.live[-1])
    ssh = ssh_to(h)
    try:
        stats = [run_round(h, ssh, paced, model, r) for r in range(ROUNDS)]
    finally:
        ssh.close()
    # the padding's tags too, once, at the end
    assert not tag_problems(h, sorted({k[0] for k in padding.kept}))
    assert not h.sh(f"ls -a {ROOT}").stdout.decode().count(".gcops-mark")
    # not vacuous: garbage was collected, and in most rounds the dry-run's candidates included blobs
    # that pushes during the mark had made live again (sweeping all candidates would have broken tags)
    assert sum(s["swept"] for s in stats) > 0
    rescued = [s for s in stats if s["rescued"]]
    assert len(rescued) >= ROUNDS // 2, [(s["rescued"], s["done"]) for s in stats]
    assert all(s["spared"] >= s["rescued"] for s in stats)


def test_push_between_the_mark_and_the_sweep_listing(host_factory, tmp_path):
    """The worst case, made deterministic: a repository's walk is over, the GC holds at the next one,
    and pushes land there: garbage layers reused by a new manifest and a fresh image. The registry's own
    dry-run then lists their blobs as eligible (an offline GC would delete them); concurrent mode keeps them."""
    storage = tmp_path / "storage"
    build_padding(storage, repos=40)
    h = host_factory("worst", storage_dir=storage)
    paced = PacedGC(tmp_path)
    model = Model(Pusher(h, tmp_path, random.Random(SEED)))
    first = "aaa/first"                          # walked first, then 40 padding repositories
    old = model.push(first, model.p.fresh_seeds(3))
    model.push(first, model.p.fresh_seeds())
    model.delete(old)
    garbage_before = dry_run_eligible(h)
    paced.arm(["/^group00/"], at_end=False)
    ssh = ssh_to(h)
    col = ConcurrentCollection(ssh, storage_root=ROOT, workdir=work_dir(f"{CONFIG.rsplit('/', 1)[0]}/.gcops", "w"),
                               run_id="w", gc_dry_run=f"{paced.binary} garbage-collect {CONFIG} --dry-run")
    marking = threading.Thread(target=col.mark)
    marking.start()
    try:
        assert paced.wait_paused("0", give_up=lambda: not marking.is_alive())
        reused = model.push(first, old["seeds"][:2] + model.p.fresh_seeds(1))
        fresh = model.push(first, model.p.fresh_seeds())
    finally:
        paced.go("0")
        marking.join(60)
    reused_img, fresh_img = (images.describe(h, first, x["tag"]) for x in (reused, fresh))
    candidates = set((h.config_file.parent / ".gcops" / "concurrent-w" / "candidates").read_text().split())
    # the race really happened: live blobs the registry's own GC would have deleted
    doomed_by_plain_gc = (reused_img.all_digests | fresh_img.all_digests) & candidates
    assert fresh_img.all_digests <= candidates
    assert {d for d in reused_img.blob_digests if d in garbage_before} <= candidates
    original = enter_read_only(h)
    try:
        outcome = col.collect()
    finally:
        leave(h, original)
        col.cleanup()
        ssh.close()
    assert images.pulls(h, first, reused["tag"]) and images.pulls(h, first, fresh["tag"]), h.last_pull_error
    assert not tag_problems(h, [first])
    assert outcome.sweep.spared >= len(doomed_by_plain_gc) and outcome.sweep.swept > 0
    assert not dry_run_eligible(h) & garbage_before - reused_img.all_digests
