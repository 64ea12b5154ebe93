"""GC output parser against recorded outputs (upstream 2.8.2 recorded here; GitLab fork and v3 built from their sources)."""
from pathlib import Path

import pytest

from gcops.registry.gc_output import GCOutputParser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gc"


def parse(name, **kw):
    parser = GCOutputParser(**kw)
    with open(FIXTURES / name, encoding="utf-8") as fh:
        for line in fh:
            parser.feed(line.rstrip("\n"))
    return parser.finish()


def test_upstream_dry_run_counts_and_digests():
    seen = []
    s = parse("upstream-2.8-dry-run.stdout", on_eligible_blob=seen.append)
    assert s.flavour == "upstream"
    assert (s.blobs_marked, s.blobs_eligible, s.manifests_eligible) == (7, 4, 0)
    assert len(seen) == 4 and all(d.startswith("sha256:") and len(d) == 71 for d in seen)
    assert s.blobs_deleted == 0 and s.blobs_removed == 4


def test_upstream_run_counts_logged_deletions_from_merged_stderr():
    s = parse("upstream-2.8-run.combined")
    assert s.blobs_deleted == 4 and s.blobs_removed == 4
    assert s.manifests_removed == 0


def test_upstream_delete_untagged_counts_manifests():
    s = parse("upstream-2.8-delete-untagged.combined")
    assert (s.blobs_eligible, s.manifests_eligible) == (8, 1)
    assert s.manifests_deleted == 1 and s.blobs_deleted == 8


def test_upstream_v3_manifest_lines():
    s = parse("upstream-v3-delete-untagged.stdout")
    assert (s.blobs_marked, s.blobs_eligible, s.manifests_eligible) == (2, 2, 1)


@pytest.mark.parametrize("name", ["gitlab-fork.text.stderr", "gitlab-fork.json.stderr"])
def test_gitlab_fork_events(name):
    seen = []
    s = parse(name, on_eligible_blob=seen.append)
    assert s.flavour == "gitlab"
    assert (s.blobs_marked, s.blobs_eligible, s.manifests_eligible) == (2, 2, 0)
    assert s.eligible_bytes == 1050624
    assert seen == ["sha256:" + "a1" * 32, "sha256:" + "b2" * 32]
    assert s.blobs_removed == 2


def test_errors_are_kept():
    s = parse("upstream-config-error.stdout")
    assert s.errors and s.errors[0].startswith("configuration error")


def test_parser_memory_does_not_grow_with_output():
    parser = GCOutputParser()
    line = "blob eligible for deletion: sha256:" + "e" * 64
    for _ in range(200_000):
        parser.feed(line)
    s = parser.finish()
    assert s.blobs_eligible == 200_000
    assert len(vars(parser)) < 10 and not any(isinstance(v, list) and len(v) > 10 for v in vars(s).values())
