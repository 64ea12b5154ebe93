"""--mode concurrent: the pure parsers, and the host scripts run for real on a small storage tree
under dash and under BusyBox (sh and its own awk/find/xargs), locally."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gcops.maintenance import concurrent_sweep
from gcops.hostside import scripts
from gcops.registry.gc_output import GCOutputParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gc"
BUSYBOX_APPLETS = ("awk", "find", "xargs", "rm", "cat", "wc", "tr", "mkdir", "chmod", "sleep", "date", "tail",
                   "sed", "grep", "sort", "mv", "df", "stat", "rmdir", "dirname", "cut")


def _shells():
    out = []
    if shutil.which("dash"):
        out.append("dash")
    if shutil.which("busybox"):
        out.append("busybox")
    return out


@pytest.fixture(params=_shells())
def shell(request, tmp_path):
    """(argv prefix, env) running a script under dash, or under BusyBox sh with BusyBox tools first on PATH."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
    if request.param == "dash":
        return ["dash", "-c"], env
    bb = tmp_path / "busybox-bin"
    bb.mkdir()
    for applet in BUSYBOX_APPLETS:
        (bb / applet).symlink_to(shutil.which("busybox"))
    env["PATH"] = f"{bb}:{env['PATH']}"
    return ["busybox", "sh", "-c"], env


def run_script(shell, name, *args):
    argv, env = shell
    p = subprocess.run(argv + [scripts.text(name), f"gcops-{name}", *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=60)
    return p


# -- a tiny storage tree ------------------------------------------------------------------------------
class Tree:
    def __init__(self, root: Path):
        self.root = root
        self.v2 = root / "docker" / "registry" / "v2"
        (self.v2 / "blobs" / "sha256").mkdir(parents=True)
        (self.v2 / "repositories").mkdir()

    def blob(self, data: bytes) -> str:
        hexd = hashlib.sha256(data).hexdigest()
        d = self.v2 / "blobs" / "sha256" / hexd[:2] / hexd
        d.mkdir(parents=True, exist_ok=True)
        (d / "data").write_bytes(data)
        return f"sha256:{hexd}"

    def has_blob(self, digest: str) -> bool:
        hexd = digest[7:]
        return (self.v2 / "blobs" / "sha256" / hexd[:2] / hexd).exists()

    def link(self, rel: str, content: str, old: bool = False) -> Path:
        p = self.v2 / "repositories" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        if old:
            os.utime(p, (time.time() - 3600, time.time() - 3600))
        return p

    def manifest(self, repo: str, config: str, layers: list[str], *, old: bool, tag: str | None = None,
                 extra: dict | None = None) -> str:
        body = {"schemaVersion": 2, "config": {"digest": config}, "layers": [{"digest": d} for d in layers],
                **(extra or {})}
        digest = self.blob(json.dumps(body, indent=2).encode())
        self.link(f"{repo}/_manifests/revisions/sha256/{digest[7:]}/link", digest, old)
        if tag:
            self.link(f"{repo}/_manifests/tags/{tag}/current/link", digest, old)
            self.link(f"{repo}/_manifests/tags/{tag}/index/sha256/{digest[7:]}/link", digest, old)
        return digest

    def index(self, repo: str, children: list[str], *, old: bool, tag: str) -> str:
        body = {"schemaVersion": 2, "manifests": [{"digest": c} for c in children]}
        digest = self.blob(json.dumps(body).encode())
        self.link(f"{repo}/_manifests/revisions/sha256/{digest[7:]}/link", digest, old)
        self.link(f"{repo}/_manifests/tags/{tag}/current/link", digest, old)
        return digest

    def layer_link(self, repo: str, digest: str, old: bool) -> None:
        self.link(f"{repo}/_layers/sha256/{digest[7:]}/link", digest, old)


# -- pure parts ----------------------------------------------------------------------------------------
def test_parse_mark_and_its_failures():
    out = concurrent_sweep.parse_mark("marked_at=10.5\ngc_start=11.0\ngc_end=13.5\ngc_exit=0\ncandidates=7\n")
    assert out.candidates == 7 and out.gc_seconds == 2.5 and out.gc_exit == 0
    failed = concurrent_sweep.parse_mark("gc_exit=1\ngc_error=configuration error: open x\n")
    assert failed.candidates is None and failed.errors == ("configuration error: open x",)
    with pytest.raises(concurrent_sweep.ConcurrentError, match="clock_stuck"):
        concurrent_sweep.parse_mark("clock_stuck=/x/.gcops-mark-1\n", 13)
    with pytest.raises(concurrent_sweep.ConcurrentError):
        concurrent_sweep.parse_mark("marked_at=1\n")       # cut off: no GC exit status


DELTA = "links=3\nmanifests_read=1\nprotected=5\nbad_links=0\nunreadable_count=0\n"


def test_parse_collect():
    out = concurrent_sweep.parse_collect(DELTA + "candidates=4\nspared=1\nswept=3\ncollect_exit=0\n")
    assert (out.delta.links, out.delta.protected, out.sweep, out.complete) == (3, 5, concurrent_sweep.SweepOutcome(4, 1, 3),
                                                                              True)
    stopped = concurrent_sweep.parse_collect(DELTA + "candidates=4\nspared=1\nswept=2\ncollect_exit=2\n")
    assert not stopped.complete and stopped.sweep.swept == 2


@pytest.mark.parametrize("text, code, match", [
    ("links=3\n", 0, "nothing was swept"),                                          # cut off
    (DELTA.replace("unreadable_count=0", "unreadable_count=1") + "collect_exit=1\n", 0, "inconsistent"),
    (DELTA + "candidates=4\nspared=0\n", 45, "nothing was swept"),
    (DELTA + "candidates=4\nspared=0\nswept=256\nsweep_failed=yes\n", 45, "256 blobs were swept"),
    (DELTA.replace("unreadable_count=0", "unreadable_count=1") + "unreadable=sha256:" + "a" * 64
     + "\ncollect_exit=1\n", 0, "cannot be read"),
    (DELTA + "collect_exit=1\n", 0, "stopped before the sweep"),
    ("clock_went_back=/r/.gcops-mark-1\ncollect_exit=1\n", 0, "nothing was swept"),
])
def test_parse_collect_refuses_what_it_cannot_vouch_for(text, code, match):
    with pytest.raises(concurrent_sweep.ConcurrentError, match=match):
        concurrent_sweep.parse_collect(text, code)


# -- the scripts, for real -----------------------------------------------------------------------------
def _mark_candidates(shell, tmp_path, fixture: Path) -> list[str]:
    """The candidates concurrent_mark.sh's own awk takes from a GC dry-run that printed `fixture`."""
    tree = Tree(tmp_path / "root")
    work = tmp_path / "state" / "concurrent-r1"
    p = run_script(shell, "concurrent_mark", tree.root, work, "r1", f"cat {fixture} >&2")
    assert p.returncode == 0, p.stdout + p.stderr
    got = (work / "candidates").read_text().split()
    assert concurrent_sweep.parse_mark(p.stdout, p.returncode).candidates == len(got)
    return got


@pytest.mark.parametrize("name", ["upstream-2.8-dry-run.stdout", "gitlab-fork.text.stderr",
                                  "gitlab-fork.json.stderr", "upstream-2.8-delete-untagged.combined"])
def test_the_marks_awk_finds_what_the_gc_output_parser_finds(shell, tmp_path, name):
    seen = []
    parser = GCOutputParser(on_eligible_blob=seen.append)
    for line in (FIXTURES / name).read_text().splitlines():
        parser.feed(line)
    assert seen and sorted(_mark_candidates(shell, tmp_path, FIXTURES / name)) == sorted(set(seen))


def test_the_marks_awk_ignores_manifests_deletion_logs_and_short_digests(shell, tmp_path):
    assert len(_mark_candidates(shell, tmp_path, FIXTURES / "upstream-2.8-run.combined")) == 4
    odd = tmp_path / "odd.log"
    odd.write_text("manifest eligible for deletion: sha256:" + "a" * 64 + "\n"
                   "blob eligible for deletion: sha256:" + "a" * 63 + "\n")
    assert _mark_candidates(shell, tmp_path / "odd", odd) == []


def test_mark_waits_for_the_storage_clock(shell, tmp_path):
    tree = Tree(tmp_path / "root")
    p = run_script(shell, "concurrent_mark", tree.root, tmp_path / "w", "r1", "true")
    assert p.returncode == 0, p.stdout + p.stderr
    marker = tree.root / ".gcops-mark-r1"
    assert marker.exists() and not (tree.root / ".gcops-mark-r1.tick").exists()
    # a file written now is strictly newer than the marker (the mark waited for the clock)
    probe = tmp_path / "root" / "later"
    probe.write_text("x")
    assert probe.stat().st_mtime_ns > marker.stat().st_mtime_ns


def test_mark_reports_a_failed_gc_and_keeps_no_candidates(shell, tmp_path):
    tree = Tree(tmp_path / "root")
    work = tmp_path / "w"
    p = run_script(shell, "concurrent_mark", tree.root, work, "r2",
                   f"cat {FIXTURES / 'upstream-config-error.stdout'}; exit 1")
    out = concurrent_sweep.parse_mark(p.stdout, p.returncode)
    assert out.gc_exit == 1 and out.candidates is None and not (work / "candidates").exists()
    assert out.errors and "configuration error" in out.errors[0]


def _marked(shell, tmp_path, tree, run="r"):
    work = tmp_path / f"w-{run}"
    p = run_script(shell, "concurrent_mark", tree.root, work, run, "true")
    assert p.returncode == 0, p.stdout + p.stderr
    return work


def test_delta_protects_new_links_and_what_their_manifests_reach(shell, tmp_path):
    t = Tree(tmp_path / "root")
    # before the mark: a live image, and garbage (manifest without revision link, its layers)
    live_layer, live_cfg = t.blob(b"live-layer"), t.blob(b"live-cfg")
    t.manifest("a/app", live_cfg, [live_layer], old=True, tag="v1")
    g_layer, g_cfg, g_other = t.blob(b"garbage-layer"), t.blob(b"garbage-cfg"), t.blob(b"garbage-other")
    t.layer_link("a/app", g_layer, old=True)
    old_child = t.manifest("a/multi", t.blob(b"child-cfg"), [t.blob(b"child-layer")], old=True)
    work = _marked(shell, tmp_path, t)
    # during the mark: reuse a garbage layer in another repo (new manifest), a new index whose child
    # is an old revision, a layer upload (link only), a killed request's empty current link
    cfg2 = t.blob(b"cfg-2")
    m2 = t.manifest("b/other", cfg2, [g_layer], old=False, tag="new")
    idx = t.index("a/multi", [old_child], old=False, tag="multi")
    uploaded = t.blob(b"uploaded-layer")
    t.layer_link("c/up", uploaded, old=False)
    t.link("a/app/_manifests/tags/broken/current/link", "", old=False)
    everything = {f"sha256:{p.parent.name}" for p in (t.v2 / "blobs").glob("sha256/*/*/data")}
    (work / "candidates").write_text("".join(f"{d}\n" for d in sorted(everything)))
    p = run_script(shell, "concurrent_collect", t.root, work, "r")
    assert p.returncode == 0, p.stdout + p.stderr
    out = concurrent_sweep.parse_collect(p.stdout)
    d = out.delta
    protected = set((work / "protected").read_text().split())
    assert {b for b in everything if t.has_blob(b)} == protected & everything   # swept: all the rest
    child_refs = {t.blob(b"child-cfg"), t.blob(b"child-layer")}
    assert {m2, cfg2, g_layer, idx, old_child, uploaded} | child_refs <= protected
    assert not {g_cfg, g_other, live_cfg, live_layer} & protected     # old links: the mark saw them
    assert d.bad_links == 1 and d.unreadable == () and d.manifests_read == 3


def test_delta_sees_links_of_the_mark_and_of_the_window_alike(shell, tmp_path):
    """The delta's two parts: links written while the GC dry-run ran (found by the mark's own walk, after
    its second marker) and links written later (found in the window from the watched directories'
    mtimes): a link created again in a leaf left empty, a new tag of an existing repository, a layer
    linked into an existing repository."""
    t = Tree(tmp_path / "root")
    cfg_a, layer_a = t.blob(b"cfg-a"), t.blob(b"layer-a")
    kept = t.manifest("ns/app", cfg_a, [layer_a], old=True, tag="v1")
    # deleted before the mark: its revision link removed, the leaf directory left (as the registry does)
    cfg_d, layer_d = t.blob(b"cfg-d"), t.blob(b"layer-d")
    gone = t.manifest("ns/app", cfg_d, [layer_d], old=True)
    (t.v2 / "repositories" / "ns/app/_manifests/revisions/sha256" / gone[7:] / "link").unlink()
    # pushed while the dry-run runs: the GC command itself writes it
    cfg_m, layer_m = t.blob(b"cfg-m"), t.blob(b"layer-m")
    body = json.dumps({"schemaVersion": 2, "config": {"digest": cfg_m}, "layers": [{"digest": layer_m}]})
    during = t.blob(body.encode())
    rev = t.v2 / "repositories" / "ns/app/_manifests/revisions/sha256" / during[7:]
    work = tmp_path / "w-r"
    push = f"mkdir -p {shlex.quote(str(rev))} && printf %s {during} > {shlex.quote(str(rev / 'link'))}"
    p = run_script(shell, "concurrent_mark", t.root, work, "r", push)
    assert p.returncode == 0, p.stdout + p.stderr
    assert concurrent_sweep.parse_mark(p.stdout).gc_exit == 0
    assert (work / "links.a").read_text().split() == [f"./ns/app/_manifests/revisions/sha256/{during[7:]}/link"]
    watch = set((work / "watch").read_text().split())
    # a leaf whose link is newer than the first marker stays watched: were that link removed and written
    # again after the mark's walks (so in no list), its leaf's mtime still tells
    assert f"./ns/app/_manifests/revisions/sha256/{during[7:]}" in watch
    assert f"./ns/app/_manifests/revisions/sha256/{kept[7:]}" not in watch    # its link predates the mark
    assert f"./ns/app/_manifests/revisions/sha256/{gone[7:]}" in watch        # empty leaf: watched
    assert "./ns/app/_manifests/revisions/sha256" in watch and "." in watch
    (rev / "link").unlink()
    (work / "links.a").write_text("")
    (rev / "link").write_text(during)
    # after the mark (its second marker): the deleted manifest pushed again, a new tag, a mounted layer
    t.link(f"ns/app/_manifests/revisions/sha256/{gone[7:]}/link", gone)
    cfg_n, layer_n = t.blob(b"cfg-n"), t.blob(b"layer-n")
    new_tag = t.manifest("ns/app", cfg_n, [layer_n], old=False, tag="v2")
    mounted = t.blob(b"mounted")
    t.layer_link("ns/app", mounted, old=False)
    garbage = t.blob(b"garbage")
    candidates = [cfg_d, layer_d, gone, cfg_m, layer_m, during, cfg_n, layer_n, new_tag, mounted, garbage]
    (work / "candidates").write_text("".join(f"{d}\n" for d in candidates))
    p = run_script(shell, "concurrent_collect", t.root, work, "r")
    assert p.returncode == 0, p.stdout + p.stderr
    out = concurrent_sweep.parse_collect(p.stdout)
    assert (out.sweep.swept, out.sweep.spared) == (1, 10)
    assert not t.has_blob(garbage) and all(t.has_blob(d) for d in candidates if d != garbage)
    assert out.delta.manifests_read == 3


def test_an_unreadable_manifest_stops_the_sweep(shell, tmp_path):
    t = Tree(tmp_path / "root")
    work = _marked(shell, tmp_path, t)
    blob = t.blob(b"garbage")
    (work / "candidates").write_text(blob + "\n")
    ghost = "sha256:" + "ab" * 32
    t.link(f"x/y/_manifests/revisions/sha256/{ghost[7:]}/link", ghost)
    p = run_script(shell, "concurrent_collect", t.root, work, "r")
    assert p.returncode == 0 and f"unreadable={ghost}" in p.stdout.splitlines()
    with pytest.raises(concurrent_sweep.ConcurrentError, match="cannot be read"):
        concurrent_sweep.parse_collect(p.stdout, p.returncode)
    assert t.has_blob(blob)                       # nothing swept


def test_sweep_deletes_unprotected_candidates_only_in_batches(shell, tmp_path):
    t = Tree(tmp_path / "root")
    blobs = [t.blob(f"b{i}".encode()) for i in range(600)]
    work = _marked(shell, tmp_path, t)
    live = t.blob(b"pushed during the mark")
    t.layer_link("new/repo", live, old=False)
    (work / "candidates").write_text("\n".join(blobs[:590] + [live, "sha256:../../etc", "sha256:" + "f" * 64]) + "\n")
    p = run_script(shell, "concurrent_collect", t.root, work, "r", 256)
    assert p.returncode == 0, p.stdout + p.stderr
    out = concurrent_sweep.parse_collect(p.stdout)
    assert (out.sweep.candidates, out.sweep.spared, out.sweep.swept) == (593, 1, 591)  # 3 batches of <= 256
    assert out.delta_seconds is not None and out.sweep_seconds is not None
    assert not any(t.has_blob(b) for b in blobs[:590]) and all(t.has_blob(b) for b in blobs[590:] + [live])
    assert set((work / "swept").read_text().split()) == set(blobs[:590]) | {"sha256:" + "f" * 64}
    # the sweep leaves the blob's two-hex parent directory, as the registry's does
    assert (t.v2 / "blobs" / "sha256" / blobs[0][7:9]).is_dir()
    assert (tmp_path / "root").is_dir() and (t.v2 / "repositories" / "new").is_dir()
    # one rename a blob, into the run's trash beside docker/ (emptied after the window, by cleanup)
    trash = t.root / ".gcops-trash-r"
    assert out.sweep.by == "move" and sorted(p.name for p in trash.iterdir()) == sorted(b[7:] for b in blobs[:590])
    assert (trash / blobs[0][7:] / "data").read_bytes() == b"b0"
    p = run_script(shell, "concurrent_cleanup", t.root, work, "r")
    assert p.returncode == 0 and "cleaned=yes" in p.stdout and not trash.exists()
    assert all(t.has_blob(b) for b in blobs[590:] + [live])


def test_sweep_deletes_in_place_what_it_cannot_move(shell, tmp_path):
    """mv failing (as on a full disk, where the trash directory cannot grow) leaves no candidate behind."""
    t = Tree(tmp_path / "root")
    blobs = [t.blob(f"b{i}".encode()) for i in range(30)]
    work = _marked(shell, tmp_path, t)
    (work / "candidates").write_text("".join(f"{b}\n" for b in blobs[:20]))
    stub = tmp_path / "failing-mv"
    stub.mkdir()
    (stub / "mv").write_text("#!/bin/sh\n# TEST FIXTURE: an mv that fails, as with ENOSPC\necho 'mv: No space left on device' >&2\nexit 1\n")
    (stub / "mv").chmod(0o755)
    argv, env = shell
    p = subprocess.run(argv + [scripts.text("concurrent_collect"), "c", str(t.root), str(work), "r", "8"],
                       capture_output=True, text=True, timeout=60, env={**env, "PATH": f"{stub}:{env['PATH']}"})
    out = concurrent_sweep.parse_collect(p.stdout, p.returncode)
    assert out.complete and out.sweep.swept == 20
    assert not any(t.has_blob(b) for b in blobs[:20]) and all(t.has_blob(b) for b in blobs[20:])


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare for a mount")
def test_sweep_deletes_in_place_when_the_blobs_are_another_mount(tmp_path):
    """A rename from a mount to another would copy: there the sweep deletes as the registry's does."""
    t = Tree(tmp_path / "root")
    blobs = [t.blob(f"b{i}".encode()) for i in range(20)]
    work = _marked((["dash", "-c"], {"PATH": os.environ["PATH"]}), tmp_path, t)
    (work / "candidates").write_text("".join(f"{b}\n" for b in blobs[:15]))
    sha = t.v2 / "blobs" / "sha256"
    script = ('set -e; cp -a "$1" "$1.copy"; mount -t tmpfs gcops-test "$1"; cp -a "$1.copy/." "$1"; shift; '
              'exec dash -c "$@"')
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "s", str(sha),
                        scripts.text("concurrent_collect"), "c", str(t.root), str(work), "r"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    out = concurrent_sweep.parse_collect(p.stdout)
    assert out.sweep.by == "remove" and out.sweep.swept == 15
    assert not (t.root / ".gcops-trash-r").exists()


@pytest.fixture
def fast_tmp(tmp_path):
    """A directory on tmpfs when there is one (thousands of small files), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="gcops-unit-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_a_storage_clock_gone_back_stops_the_sweep(shell, tmp_path):
    t = Tree(tmp_path / "root")
    blob = t.blob(b"garbage")
    work = _marked(shell, tmp_path, t)
    (work / "candidates").write_text(blob + "\n")
    future = time.time() + 3600                    # as if the clock had been an hour ahead at the mark
    os.utime(t.root / ".gcops-mark-r", (future, future))
    p = run_script(shell, "concurrent_collect", t.root, work, "r")
    assert "clock_went_back" in p.stdout and t.has_blob(blob)
    with pytest.raises(concurrent_sweep.ConcurrentError, match="clock went back"):
        concurrent_sweep.parse_collect(p.stdout, p.returncode)


def test_sigterm_stops_the_sweep_between_batches_only(fast_tmp):
    """The process gcops' restore stops ends only after its current deletion batch: none runs on after it."""
    tmp_path = fast_tmp
    t = Tree(tmp_path / "root")
    blobs = [t.blob(f"b{i}".encode()) for i in range(256 * 10)]
    work = _marked((["dash", "-c"], {"PATH": os.environ["PATH"]}), tmp_path, t)
    (work / "candidates").write_text("".join(f"{b}\n" for b in blobs))
    proc = subprocess.Popen(["dash", "-c", scripts.text("concurrent_collect"), "c", str(t.root), str(work), "r", "256"],
                            stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while t.has_blob(blobs[0]) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)                         # the first batch is under way
    proc.send_signal(15)
    out, _ = proc.communicate(timeout=30)
    left = sum(t.has_blob(b) for b in blobs)
    time.sleep(0.2)                                # had a deletion outlived the shell, it would show now
    assert sum(t.has_blob(b) for b in blobs) == left
    res = concurrent_sweep.parse_collect(out)
    assert res.sweep.swept % 256 == 0 and res.sweep.swept == len(blobs) - left
    assert res.sweep.swept >= 256                  # the batch under way was finished
    if left:                                       # stopped part-way (a very fast machine may finish first)
        assert not res.complete


def test_cleanup_removes_marker_and_workdir_and_is_idempotent(shell, tmp_path):
    t = Tree(tmp_path / "root")
    work = _marked(shell, tmp_path, t, run="c")
    for _ in range(2):
        p = run_script(shell, "concurrent_cleanup", t.root, work, "c")
        assert p.returncode == 0 and "cleaned=yes" in p.stdout
    assert not work.exists() and not list(t.root.glob(".gcops-mark-*"))
    assert (t.root / "docker").is_dir()


def test_stale_removes_only_what_no_run_can_still_need(shell, tmp_path):
    """recover's sweep of leftovers: a run whose collector ran goes (markers, trash, work dir); a run
    still marking, one in its window (holding the lock) and a fresh one between mark and window stay."""
    t = Tree(tmp_path / "root")
    base = tmp_path / "state"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        for run in ("done", "marking", "window", "between"):
            w = base / f"concurrent-{run}"
            w.mkdir(parents=True)
            (t.root / f".gcops-mark-{run}").write_text("")
            (t.root / f".gcops-mark-{run}.2").write_text("")
            (t.root / f".gcops-trash-{run}" / "ab").mkdir(parents=True)
        (base / "concurrent-done" / "collected").write_text("")
        (base / "concurrent-marking" / "gc.pid").write_text(str(sleeper.pid))
        (base / "concurrent-window" / "collected").write_text("")
        (base / "lock").mkdir()
        (base / "lock" / "run_id").write_text("window")
        p = run_script(shell, "concurrent_stale", t.root, base)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert p.returncode == 0 and p.stdout.split() == ["removed=done", "stale_done=yes"], p.stdout + p.stderr
    left = sorted(x.name for x in t.root.iterdir() if x.name.startswith(".gcops"))
    assert left == sorted(f"{kind}{run}{ext}" for run in ("marking", "window", "between")
                          for kind, ext in ((".gcops-mark-", ""), (".gcops-mark-", ".2"), (".gcops-trash-", "")))
    assert sorted(x.name for x in base.iterdir()) == ["concurrent-between", "concurrent-marking",
                                                     "concurrent-window", "lock"]
    assert (t.root / "docker").is_dir()


def test_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    for name in ("concurrent_mark", "concurrent_collect", "concurrent_cleanup", "concurrent_stale"):
        p = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", "-"], input=scripts.text(name),
                           capture_output=True, text=True)
        assert p.returncode == 0, name + "\n" + p.stdout


def test_concurrent_with_delete_untagged_is_a_config_error_naming_the_key(tmp_path):
    from gcops.config import ConfigError, load_config

    path = tmp_path / "gcops.toml"
    path.write_text('[gcops]\ndelete_untagged = true\n\n[[instance]]\nname = "a"\nhost = "local"\n'
                    'playbook = "distribution"\nmode = "concurrent"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "instance[0].mode" in str(exc.value) and "delete_untagged" in str(exc.value)
    path.write_text('[gcops]\nmode = "concurrent"\n\n[[instance]]\nname = "a"\nhost = "local"\n'
                    'playbook = "distribution"\n')
    assert load_config(path).instances[0].mode == "concurrent"


def test_refusal_only_for_the_combination():
    from gcops.maintenance.concurrent import refusal

    assert refusal("concurrent", True) and "--mode readonly" in refusal("concurrent", True)
    assert refusal("concurrent", False) is None and refusal("readonly", True) is None
