"""What retention adds to a run at scale: its host scripts on a large storage tree, timed.

Builds a registry with build_registry.py (default 1,000 repositories x 3 tags, written in
distribution's layout), sets push times (v1 30 days ago, v2 20, v3 1), then times, with the
real host scripts run by /bin/sh on this machine (LocalHost, as `host = "local"` does):

- prepare: list every tag with digest and push time, evaluate the rules (before the window);
- apply:   list again, evaluate again, delete the due tags, unlink the manifests they leave
           untagged (this is what the read-only window grows by);
- created: the same plan with age_from = "created" (reads every manifest and config).

The rule (keep the newest tag, delete older than 7 days) deletes 2 of 3 tags per repository.

    python3 benchmarks/retention.py [--repos 1000] [--workdir /dev/shm]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.build_registry import build  # noqa: E402
from gcops.config import RetentionRule  # noqa: E402
from gcops.transport.hosts import LocalHost  # noqa: E402
from gcops.registry.untagged import UntaggedScan  # noqa: E402
from gcops.retention import RetentionStep  # noqa: E402

DAY = 86400
AGES = {"v1": 30, "v2": 20, "v3": 1}


def rule(age_from: str = "pushed") -> RetentionRule:
    return RetentionRule(index=0, name_regex=re.compile(".*"), keep_n=1, older_than=7 * DAY, age_from=age_from)


def set_push_times(root: Path) -> int:
    now, n = time.time(), 0
    for link in (root / "docker/registry/v2/repositories").glob("*/*/_manifests/tags/*/current/link"):
        moment = now - AGES[link.parent.parent.name] * DAY
        os.utime(link, (moment, moment))
        n += 1
    return n


def timed(label: str, fn):
    t0 = time.monotonic()
    value = fn()
    print(f"{label:<52} {time.monotonic() - t0:7.2f} s")
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--workdir", default="/dev/shm")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gcops-retention-bench-", dir=a.workdir))
    try:
        root = work / "storage"
        built = timed(f"build {a.repos} repositories", lambda: build(root, repos=a.repos, kept=3, deleted=0, layers=2))
        tags = set_push_times(root)
        print(f"{tags} tags, {built.blobs} blobs")
        host = LocalHost()
        created = RetentionStep([rule("created")])
        planned = timed("plan, age_from = created (reads manifests + configs)",
                        lambda: created.prepare(host, str(root)))
        step = RetentionStep([rule()])
        planned = timed("prepare: list tags + evaluate (before the window)", lambda: step.prepare(host, str(root)))
        print(f"  {len(planned)} tags due ({len(created.planned)} with age_from = created)")
        def plan_bytes():
            scan = UntaggedScan(host, str(root))
            scan.find()
            return step.removal_bytes(host, str(root), step.left_untagged(scan))

        links = timed("plan: manifests left untagged + bytes of links", plan_bytes)
        print(f"  {links:,} bytes of tag and revision links")
        deleted = timed("apply: relist, re-evaluate, delete, unlink (in window)",
                        lambda: step.apply_on(host, str(root)))
        print(f"  {len(deleted)} tags deleted, {step.deleted} manifests unlinked")
        left = len(list((root / "docker/registry/v2/repositories").glob("*/*/_manifests/tags/*")))
        assert len(deleted) == 2 * a.repos and step.deleted == 2 * a.repos and left == a.repos, (left, step.deleted)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
