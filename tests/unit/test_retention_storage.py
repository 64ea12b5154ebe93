"""Retention's host scripts on a real storage tree, under dash and BusyBox sh, and their parsers."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gcops.hostside import scripts
from gcops.transport.hosts import LocalHost
from gcops.retention.listing import ConfigReader, parse_created, parse_tags
from gcops.retention.step import parse_outcomes

SCRIPTS = ("list_tags", "read_blobs", "delete_tags", "removal_bytes", "unlink_manifests")
SHELLS = [pytest.param(["dash"], id="dash"), pytest.param(["busybox", "sh"], id="busybox")]
PUSHED = 1_700_000_000


def _blob(root: Path, data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    path = root / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hexd


def _tag(root: Path, repo: str, tag: str, hexd: str, pushed: int) -> Path:
    base = root / "docker/registry/v2/repositories" / repo / "_manifests"
    (base / "revisions/sha256" / hexd).mkdir(parents=True, exist_ok=True)
    (base / "revisions/sha256" / hexd / "link").write_text(f"sha256:{hexd}")
    link = base / "tags" / tag / "current" / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(f"sha256:{hexd}")
    (base / "tags" / tag / "index/sha256" / hexd).mkdir(parents=True, exist_ok=True)
    (base / "tags" / tag / "index/sha256" / hexd / "link").write_text(f"sha256:{hexd}")
    os.utime(link, (pushed, pushed))
    return link


@pytest.fixture
def storage(tmp_path):
    """g/app: old and stable share a digest; new has its own (an image with a config created 2021)."""
    root = tmp_path / "storage"
    config = _blob(root, json.dumps({"created": "2021-02-03T04:05:06.123456789Z", "architecture": "amd64"},
                                    indent=2).encode())
    manifest = _blob(root, json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{config}"},
                                       "layers": []}, indent=2).encode())
    index = _blob(root, json.dumps({"schemaVersion": 2, "manifests": [{"digest": f"sha256:{manifest}"}]}).encode())
    _tag(root, "g/app", "old", manifest, PUSHED)
    _tag(root, "g/app", "stable", manifest, PUSHED + 100)
    _tag(root, "g/app", "multi", index, PUSHED + 200)
    return root, manifest, index


def _run(shell, name, *args, input=b""):
    proc = subprocess.run([*shell, "-c", scripts.text(name), f"gcops-{name}", *map(str, args)], input=input,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_pass_shellcheck(name):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    path = Path(scripts.__file__).parent / "sh" / f"{name}.sh"
    proc = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_list_tags_gives_digest_and_push_time(shell, storage):
    root, manifest, index = storage
    now, tags = parse_tags(_run(shell, "list_tags", root))
    assert abs(now - __import__("time").time()) < 60
    assert {(t.repository, t.tag, t.digest, t.pushed) for t in tags} == {
        ("g/app", "old", f"sha256:{manifest}", PUSHED), ("g/app", "stable", f"sha256:{manifest}", PUSHED + 100),
        ("g/app", "multi", f"sha256:{index}", PUSHED + 200)}


@pytest.mark.parametrize("shell", SHELLS)
def test_list_tags_on_a_storage_without_repositories(shell, tmp_path):
    now, tags = parse_tags(_run(shell, "list_tags", tmp_path / "nothing"))
    assert now > 0 and tags == []


@pytest.mark.parametrize("shell", SHELLS)
def test_delete_tags_removes_only_tags_still_pointing_at_the_planned_digest(shell, storage):
    root, manifest, index = storage
    repo = root / "docker/registry/v2/repositories/g/app/_manifests"
    stdin = (f"g/app\told\t{manifest}\ng/app\tmulti\t{manifest}\ng/app\tnope\t{manifest}\n").encode()
    outcomes = parse_outcomes(_run(shell, "delete_tags", root, input=stdin))
    assert outcomes == {("g/app", "old"): "deleted", ("g/app", "multi"): "changed", ("g/app", "nope"): "gone"}
    assert not (repo / "tags/old").exists()
    assert (repo / "tags/stable/current/link").read_text() == f"sha256:{manifest}"     # shares the digest
    assert (repo / "tags/multi/current/link").exists()
    assert (repo / "revisions/sha256" / manifest / "link").exists()                  # the manifest itself stays


@pytest.mark.parametrize("shell", SHELLS)
def test_unlink_manifests_removes_revision_and_tag_history_links(shell, storage):
    root, manifest, index = storage
    repo = root / "docker/registry/v2/repositories/g/app/_manifests"
    out = _run(shell, "unlink_manifests", root, input=f"g/app\t{index}\ng/app\t{'0' * 64}\n".encode())
    assert out.strip() == "unlinked=1"                       # the missing one is not counted
    assert not (repo / "revisions/sha256" / index).exists()
    assert not (repo / "tags/multi/index/sha256" / index).exists()
    assert (repo / "tags/multi/current/link").exists()       # the tag itself is delete_tags' business
    assert (repo / "revisions/sha256" / manifest / "link").exists()
    assert _run(shell, "unlink_manifests", root, input=b"").strip() == "unlinked=0"


@pytest.mark.parametrize("shell", SHELLS)
def test_removal_bytes_counts_each_path_once(shell, storage):
    root, manifest, index = storage
    repo = root / "docker/registry/v2/repositories/g/app/_manifests"
    stdin = (f"tag\tg/app\tmulti\ntag\tg/app\tnope\nrevision\tg/app\t{index}\n").encode()
    out = _run(shell, "removal_bytes", root, input=stdin)
    # the index's revision link, and the tag "multi" whose own history link to the index is not counted twice
    du = subprocess.run(["du", "-scB1", str(repo / "tags/multi"), str(repo / "revisions/sha256" / index)],
                        capture_output=True, text=True, check=True).stdout.splitlines()[-1].split()[0]
    assert out.strip() == f"bytes={du}"


def test_created_is_read_from_the_image_config_also_through_an_index(storage):
    root, manifest, index = storage
    _, tags = parse_tags(_run(["dash"], "list_tags", root))
    reader = ConfigReader(LocalHost(), str(root))
    created = {t.tag: t.created for t in reader.with_created(tags)}
    expected = parse_created("2021-02-03T04:05:06Z") + 0.123456
    assert created == pytest.approx({"old": expected, "stable": expected, "multi": expected})
    assert len(reader.docs) == 3 and not reader.unreadable


@pytest.mark.parametrize("value,expected", [
    ("1970-01-01T00:00:00Z", 0.0),
    ("2021-02-03T04:05:06+01:00", 1612321506.0),
    ("2021-02-03T04:05:06.5Z", 1612325106.5),
    ("yesterday", None), (None, None), (12, None),
])
def test_parse_created(value, expected):
    assert parse_created(value) == expected


def test_parse_tags_skips_what_is_not_a_tag():
    text = ("now=1800000000\n"
            f"repositories/g/app/_manifests/tags/ok/current/link\tsha256:{'a' * 64}\t1700000000\n"
            f"repositories/g/app/_manifests/tags/bad/current/link\tsha256:short\t1700000000\n"
            f"repositories/../x/_manifests/tags/t/current/link\tsha256:{'a' * 64}\t1700000000\n"
            "garbage\n")
    now, tags = parse_tags(text)
    assert now == 1800000000 and [t.tag for t in tags] == ["ok"]


def _rule(**kw):
    import re

    from gcops.config import RetentionRule
    return RetentionRule(index=0, name_regex=re.compile(kw.pop("name", ".*")), **kw)


def local_window(root: Path, *, holder: str = "run-1", seconds: float = 60):
    """The window as a step sees it, on this machine: a host state dir (lock, marker) beside a config
    path under `root`; `holder` is the run the lock names (a takeover when not "run-1")."""
    import threading
    import time

    from gcops.hostside import NodePlan
    from gcops.maintenance.in_window import InWindow
    from gcops.maintenance.node import Node
    from gcops.maintenance.preflight import NodeFacts

    plan = NodePlan(run_id="run-1", owner="test", config_path=str(root / "config.yml"), registry_url="http://x",
                    mode="readonly", restart=":", stop=":", start=":", gc=":", max_window=seconds,
                    already_read_only=False)
    (Path(plan.state_dir) / "lock").mkdir(parents=True, exist_ok=True)
    (Path(plan.state_dir) / "lock/run_id").write_text(f"{holder}\n")
    (Path(plan.state_dir) / "marker").write_text("run-1\n")
    node = Node("local", host=LocalHost(), plan=plan, facts=NodeFacts("local", storage_root=str(root)))
    return InWindow(node, time.monotonic() + seconds, threading.Event(), seconds)


def test_a_push_between_plan_and_window_is_never_deleted(storage):
    """prepare() plans old + multi; then multi is pushed again (young now) and old is re-pointed at another
    digest: apply() (the window) deletes neither, and unlinks nothing."""
    from gcops.retention.step import RetentionStep

    root, manifest, index = storage
    tags = root / "docker/registry/v2/repositories/g/app/_manifests/tags"
    step = RetentionStep([_rule(name_regex_keep=__import__("re").compile("stable"), older_than=7 * 86400.0)])
    assert {d.tag for d in step.prepare(LocalHost(), str(root))} == {"old", "multi"}
    os.utime(tags / "multi/current/link")                                  # pushed again just now
    (tags / "old/current/link").write_text(f"sha256:{index}")              # the tag moved
    os.utime(tags / "old/current/link", (PUSHED, PUSHED))
    assert step.apply(local_window(root)) == []
    assert (tags / "multi").is_dir() and (tags / "old").is_dir() and step.figures.manifests_deleted == 0


def test_apply_unlinks_what_the_deleted_tag_leaves_untagged_but_not_a_shared_child(storage):
    from gcops.retention.step import RetentionStep

    root, manifest, index = storage
    revisions = root / "docker/registry/v2/repositories/g/app/_manifests/revisions/sha256"
    step = RetentionStep([_rule(name="multi|old")])
    step.prepare(LocalHost(), str(root))
    deleted = step.apply(local_window(root))
    assert {d["tag"] for d in deleted} == {"multi", "old"}
    assert not (revisions / index).exists()            # the index: no tag left on it
    assert (revisions / manifest / "link").exists()    # its child: "stable" still points at it
    assert step.figures.manifests_deleted == 1
    assert not list((root / ".gcops").glob("gc-*.log"))   # the step's output was read back and removed


def test_a_step_whose_lock_was_taken_over_deletes_nothing(storage):
    """Another run (or `gcops recover`) took the lock: the window's deletions do not run."""
    from gcops.errors import WindowFailed
    from gcops.retention.step import RetentionStep

    root, manifest, index = storage
    tags = root / "docker/registry/v2/repositories/g/app/_manifests/tags"
    step = RetentionStep([_rule(name="multi|old")])
    step.prepare(LocalHost(), str(root))
    with pytest.raises(WindowFailed, match="no longer holds the lock"):
        step.apply(local_window(root, holder="run-2"))
    assert (tags / "multi").is_dir() and (tags / "old").is_dir() and step.figures.tags_deleted == []


def test_a_step_past_the_deadline_deletes_nothing(storage):
    from gcops.errors import WindowFailed
    from gcops.retention.step import RetentionStep

    root, manifest, index = storage
    tags = root / "docker/registry/v2/repositories/g/app/_manifests/tags"
    step = RetentionStep([_rule(name="multi|old")])
    step.prepare(LocalHost(), str(root))
    with pytest.raises(WindowFailed, match="past max_window"):
        step.apply(local_window(root, seconds=-1))
    assert (tags / "multi").is_dir() and (tags / "old").is_dir()


@pytest.mark.parametrize("shell", SHELLS)
def test_list_tags_of_named_repositories_only(shell, storage):
    root, manifest, index = storage
    _tag(root, "g/other", "x", manifest, PUSHED)
    _, tags = parse_tags(_run(shell, "list_tags", root, "-", input=b"g/other\nnot/there\n"))
    assert [(t.repository, t.tag) for t in tags] == [("g/other", "x")]
    _, tags = parse_tags(_run(shell, "list_tags", root, "-", input=b"not/there\n"))
    assert tags == []


def test_a_collector_never_starts_once_a_restore_has_begun(storage, tmp_path):
    """gc.sh writes the group's pid before it looks for restore.sh's mutex, and restore.sh takes the mutex
    before it reads the pid: a GC launched as the window's deadline passes either is stopped by the
    restore or never runs; it never starts on a registry that accepts writes again."""
    from gcops import hostside

    root, manifest, index = storage
    plan = local_window(root).node.plan
    restoring = Path(plan.state_dir) / "restoring"
    restoring.symlink_to("12345")                   # restore.sh's mutex: a restore has begun
    ran = tmp_path / "ran"
    out = LocalHost().run(hostside.collect_command(plan, f"touch {ran}"), check=False).text
    assert "gc_exit=98" in out and not ran.exists()
    restoring.unlink()
    (Path(plan.state_dir) / "marker").unlink()     # the restore is over: the window has gone
    out = LocalHost().run(hostside.collect_command(plan, f"touch {ran}"), check=False).text
    assert "lock_lost" in out and not ran.exists()
    (Path(plan.state_dir) / "marker").write_text("run-1\n")
    out = LocalHost().run(hostside.collect_command(plan, f"touch {ran}"), check=False).text
    assert "gc_exit=0" in out and ran.exists()
