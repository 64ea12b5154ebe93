"""Retention on a real registry (issue 12): plan lists exactly the expected tags, run deletes exactly those
(and reclaims what they leave, in the same run), kept tags pull, an emptying policy is refused."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, toml_str, write_config
from tests.integration.conftest import LAYER, write_probe

DAY = 86400
RULE = """[[instance.retention]]
repositories = "team/.*"
name_regex = ".*"
name_regex_keep = "v\\\\d+\\\\.\\\\d+\\\\.\\\\d+|stable"
keep_n = 1
older_than = "7d"
"""


def config(tmp_path, host, retention: str, extra: str = "", local: bool = False) -> Path:
    return write_config(tmp_path / "gcops.toml", [instance_block("reg", "local" if local else host) + retention],
                        state_dir=tmp_path / "state", client_key=host.client_key, known_hosts=host.known_hosts,
                        gcops_extra=extra)


def tags_dir(host, repo: str) -> Path:
    return host.storage_dir / "docker/registry/v2/repositories" / repo / "_manifests/tags"


def pushed(host, repo: str, tag: str, days_ago: float) -> None:
    """Set when the tag was (last) pushed, as the storage records it: the mtime of its current link."""
    moment = time.time() - days_ago * DAY
    os.utime(tags_dir(host, repo) / tag / "current/link", (moment, moment))


def push(host, tmp_path, repo, tag, days_ago, *, seed, layer_seeds=None, multi=False, layout_tag=None):
    if multi:
        layout = images.build_multiarch_layout(tmp_path / f"oci-{seed}", "t", seed=seed, layer_size=LAYER)
    else:
        layout = images.build_layout(tmp_path / f"oci-{seed}", "t", seed=seed, layer_size=LAYER,
                                     layer_seeds=layer_seeds)
    img = images.push(host, layout, "t", repo, dest_tag=tag, all_platforms=multi)
    pushed(host, repo, tag, days_ago)
    return img


def tree_digest(path: Path) -> str:
    """Every path, link content and mtime under `path`: changes if anything there is touched."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(f"{p.relative_to(path)} {p.stat().st_mtime_ns}".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_plan_and_run_delete_exactly_the_policy_tags(host_factory, tmp_path):
    h = host_factory("ret")
    imgs = {
        ("team/app", "latest"): push(h, tmp_path, "team/app", "latest", 40, seed=1, layer_seeds=["base", "l"]),
        ("team/app", "v1.0.0"): push(h, tmp_path, "team/app", "v1.0.0", 60, seed=2),           # keep regex
        ("team/app", "stable"): push(h, tmp_path, "team/app", "stable", 5, seed=3),            # keep regex
        ("team/app", "old"): push(h, tmp_path, "team/app", "old", 30, seed=3),                 # same digest as stable
        ("team/app", "fresh-1"): push(h, tmp_path, "team/app", "fresh-1", 2, seed=4),          # kept: keep_n
        ("team/app", "fresh-2"): push(h, tmp_path, "team/app", "fresh-2", 3, seed=5),          # kept: older_than
        ("team/app", "dev-1"): push(h, tmp_path, "team/app", "dev-1", 20, seed=6, layer_seeds=["base", "d1"]),
        ("team/app", "dev-2"): push(h, tmp_path, "team/app", "dev-2", 10, seed=7),
        ("team/multi", "latest"): push(h, tmp_path, "team/multi", "latest", 1, seed=8),
        ("team/multi", "build-9"): push(h, tmp_path, "team/multi", "build-9", 2, seed=8),      # kept: keep_n
        ("team/multi", "multi-old"): push(h, tmp_path, "team/multi", "multi-old", 30, seed=9, multi=True),
        ("other/svc", "old"): push(h, tmp_path, "other/svc", "old", 90, seed=10),             # out of scope
    }
    doomed = {("team/app", "old"), ("team/app", "dev-1"), ("team/app", "dev-2"), ("team/multi", "multi-old")}
    assert imgs[("team/app", "old")].manifest_digest == imgs[("team/app", "stable")].manifest_digest
    prom = tmp_path / "gcops.prom"
    cfg = config(tmp_path, h, RULE, extra=f"metrics_textfile = {toml_str(prom)}")
    original, du_before, other_before = h.config_file.read_bytes(), images.storage_du(h), tree_digest(
        h.storage_dir / "docker/registry/v2/repositories/other")

    plan = run_gcops("--config", str(cfg), "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json_doc(plan)["instances"][0]
    entries = planned["retention"]["delete"]
    assert {(e["repository"], e["tag"]) for e in entries} == doomed
    for e in entries:
        assert e["digest"] == imgs[(e["repository"], e["tag"])].manifest_digest and e["rule"] == "retention[0]"
        assert abs(e["age_seconds"] - {"old": 30, "dev-1": 20, "dev-2": 10, "multi-old": 30}[e["tag"]] * DAY) < 600
    dry = run_gcops("--config", str(cfg), "run", "--dry-run")
    assert dry.returncode == 0 and all(f"{r}:{t} (sha256:" in dry.stdout for r, t in doomed), dry.stdout
    assert "team/app:stable (" not in dry.stdout
    assert images.storage_du(h) == du_before and all((tags_dir(h, r) / t).is_dir() for r, t in doomed)

    proc = run_gcops("--config", str(cfg), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert {(d["repository"], d["tag"], d["digest"]) for d in inst["tags_deleted"]} == {
        (r, t, imgs[(r, t)].manifest_digest) for r, t in doomed}
    for repo, tag in doomed:
        assert images.get_manifest(h, repo, tag)[0] == 404
    kept = [img for key, img in imgs.items() if key not in doomed]
    for img in kept:
        status, digest, _, _ = images.get_manifest(h, img.repo, img.tag)
        assert status == 200 and digest == img.manifest_digest, (img.repo, img.tag)
        assert images.pulls(h, img.repo, img.tag), h.last_pull_error
    on_disk = images.blob_digests_on_disk(h)
    kept_blobs = set().union(*(img.all_digests for img in kept))
    gone = set().union(*(imgs[k].all_digests for k in doomed)) - kept_blobs
    multi = imgs[("team/multi", "multi-old")]
    assert multi.all_digests <= gone and len(multi.child_digests) == 2     # index, children, their layers
    assert not (gone & on_disk) and kept_blobs <= on_disk                  # the shared "base" layer stays
    assert tree_digest(h.storage_dir / "docker/registry/v2/repositories/other") == other_before

    real_drop = du_before - images.storage_du(h)
    assert abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop
    assert abs(planned["reclaimable_bytes"] - inst["reclaimed_bytes"]) <= 0.05 * inst["reclaimed_bytes"]
    assert inst["manifests_deleted"] == 3 + 2 + 0      # dev-1, dev-2, the index; its 2 children; not old's
    assert h.config_file.read_bytes() == original and write_probe(h) == 400

    report = json.loads(run_gcops("--config", str(cfg), "report", "--format", "json").stdout)
    assert len(report["runs"][-1]["instances"][0]["tags_deleted"]) == 4
    assert 'gcops_tags_deleted{instance="reg"} 4.0' in prom.read_text()
    again = json_doc(run_gcops("--config", str(cfg), "plan", "--json"))["instances"][0]
    assert again["retention"]["delete"] == [] and again["error"] is None   # the next run has nothing to delete

    # age_from = "created": the test images are stamped 1970 (like reproducible builds), pushed 3 days ago
    created = config(tmp_path, h, RULE.replace('repositories = "team/.*"', 'repositories = "team/app"')
                     .replace('name_regex = ".*"', 'name_regex = "fresh-2"').replace("keep_n = 1", "keep_n = 0")
                     + 'age_from = "created"\n')
    [entry] = json_doc(run_gcops("--config", str(created), "plan", "--json"))["instances"][0]["retention"]["delete"]
    assert entry["tag"] == "fresh-2" and entry["age_seconds"] > 50 * 365 * DAY


def test_a_policy_that_would_empty_a_repository_is_refused_until_allowed(host_factory, tmp_path):
    """Locally (host = "local", no SSH at all), as admins on the registry machine run it."""
    h = host_factory("empty")
    a = push(h, tmp_path, "team/x", "a", 30, seed=21)
    b = push(h, tmp_path, "team/x", "b", 20, seed=22)
    keep = push(h, tmp_path, "team/y", "latest", 30, seed=23)
    typo = '[[instance.retention]]\nname_regex = ".*"\nolder_than = "7d"\n'
    original, du = h.config_file.read_bytes(), images.storage_du(h)
    h.stop_sshd()
    tags_before = tree_digest(tags_dir(h, "team/x"))

    plan = run_gcops("--config", str(config(tmp_path, h, typo, local=True)), "plan", "--json", host=h)
    assert plan.returncode == 1
    assert "'team/x'" in json_doc(plan)["instances"][0]["error"]
    proc = run_gcops("--config", str(config(tmp_path, h, typo, local=True)), "run", host=h)
    assert proc.returncode == 1
    assert "'team/x'" in proc.stderr and "retention[0]" in proc.stderr and "allow_empty" in proc.stderr
    assert tree_digest(tags_dir(h, "team/x")) == tags_before and images.storage_du(h) == du
    assert h.config_file.read_bytes() == original and write_probe(h) == 400

    skipped = run_gcops("--config", str(config(tmp_path, h, typo, local=True)), "run", "--no-retention", "--json",
                        host=h)
    assert skipped.returncode == 0 and json_doc(skipped)["instances"][0]["tags_deleted"] == []
    assert images.pulls(h, "team/x", "a") and images.pulls(h, "team/x", "b")

    allowed = config(tmp_path, h, typo + "allow_empty = true\n", local=True)
    proc = run_gcops("--config", str(allowed), "run", "--json", host=h)
    assert proc.returncode == 0, proc.stderr
    assert {d["tag"] for d in json_doc(proc)["instances"][0]["tags_deleted"]} == {"a", "b"}
    assert not list(tags_dir(h, "team/x").iterdir())
    assert not ((a.all_digests | b.all_digests) & images.blob_digests_on_disk(h))
    assert images.pulls(h, "team/y", "latest") and keep.all_digests <= images.blob_digests_on_disk(h)
