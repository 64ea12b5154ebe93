"""gcops' storage measurement vs plain `du -sB1` + `find -name data | wc -l`, cold and warm cache.

Both run inside the test host (host.sh, so the same process start cost), on the same tree.
Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before each repetition (needs root; if
it is not possible only warm figures are given). The order alternates per repetition.
"""
from __future__ import annotations

import os
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gcops.storage.filesystem import measure_command, parse_measurement  # noqa: E402

DROP = Path("/proc/sys/vm/drop_caches")


def baseline_command(root: str) -> str:
    return f"cd {shlex.quote(root)} && du -sB1 . | cut -f1 && find . -name data | wc -l"


def can_drop_caches() -> bool:
    try:
        with open(DROP, "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def _drop() -> None:
    os.sync()
    with open(DROP, "w") as fh:
        fh.write("3\n")


def _timed(host, cmd: str) -> tuple[float, str]:
    t0 = time.monotonic()
    out = host.sh(cmd, timeout=600).stdout.decode()
    return time.monotonic() - t0, out


def compare(host, root: str, reps: int = 5) -> dict:
    """Median seconds of each command, cold and warm; and whether their numbers agree."""
    gcops_cmd, base_cmd = measure_command(root), baseline_command(root)
    cold_ok = can_drop_caches()
    res: dict = {"reps": reps, "cold_possible": cold_ok}
    for phase in (("cold", "warm") if cold_ok else ("warm",)):
        g, b = [], []
        if phase == "warm":
            _timed(host, base_cmd)   # warm the cache once
        for i in range(reps):
            order = [("gcops", gcops_cmd, g), ("du", base_cmd, b)]
            for name, cmd, into in (order if i % 2 == 0 else order[::-1]):
                if phase == "cold":
                    _drop()
                secs, out = _timed(host, cmd)
                into.append(secs)
                res[f"out_{name}"] = out
        res[phase] = {"gcops": statistics.median(g), "du": statistics.median(b),
                      "gcops_all": g, "du_all": b}
    snap = parse_measurement(res.pop("out_gcops"))
    du_bytes, du_blobs = (int(x) for x in res.pop("out_du").split())
    res.update(gcops_bytes=snap.storage_bytes, gcops_blobs=snap.blobs, du_bytes=du_bytes, du_blobs=du_blobs,
               entries=int(host.sh(f"find {shlex.quote(root)} | wc -l").stdout.decode().strip()))
    return res
