"""Measure a filesystem-driver storage tree on its host: one command, one pass.

`measure_command` walks the tree once with `find -printf` (blocks per entry,
as `du -sB1` counts them) and counts blob `data` files on the way; `df` gives
the filesystem's used bytes. `parse_measurement` is pure and tested with
recorded outputs.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

BLOB_DATA = "docker/registry/v2/blobs/sha256/"


class MeasurementError(Exception):
    """The storage could not be measured."""


@dataclass(frozen=True)
class StorageSnapshot:
    storage_bytes: int     # on-disk bytes of the tree (du -sB1 semantics)
    fs_used_bytes: int | None   # used bytes of the filesystem holding it (df); None on object storage
    blobs: int             # blob data files


def measure_command(storage_root: str) -> str:
    """Shell command printing `df_used` then `tree_bytes blob_count`."""
    root = shlex.quote(storage_root)
    # %b is 512-byte blocks per entry, the unit du itself sums; directories
    # count too, as in du. awk keeps two numbers, not the listing.
    awk = ("awk '{s += $1} "
           "/^[0-9]+ docker\\/registry\\/v2\\/blobs\\/sha256\\/[0-9a-f][0-9a-f]\\/[0-9a-f]+\\/data$/ {n++} "
           "END {printf \"%.0f %d\\n\", s * 512, n}'")
    return (f"cd {root} && df -P -B1 . | awk 'NR==2 {{print $3}}' && "
            f"find . -printf '%b %P\\n' | {awk}")


def parse_measurement(output: str) -> StorageSnapshot:
    """Parse `measure_command` output. Raises MeasurementError."""
    lines = [line for line in output.split("\n") if line.strip() and "=" not in line]  # key=value: other facts
    try:
        fs_used = int(lines[0].strip())
        tree_bytes, blobs = (int(x) for x in lines[1].split())
    except (IndexError, ValueError) as exc:
        raise MeasurementError(f"unexpected measurement output: {output.strip()[:200]!r}") from exc
    return StorageSnapshot(storage_bytes=tree_bytes, fs_used_bytes=fs_used, blobs=blobs)


def blob_paths_input(digests) -> bytes:
    """NUL-separated blob directory paths relative to the storage root, for `du --files0-from`."""
    out = bytearray()
    for digest in digests:
        hexpart = digest.split(":", 1)[-1]
        out += f"{BLOB_DATA}{hexpart[:2]}/{hexpart}\0".encode("ascii")
    return bytes(out)


def blobs_size_command(storage_root: str) -> str:
    """Shell command summing on-disk bytes of the blob dirs named on stdin (NUL-separated)."""
    return (f"cd {shlex.quote(storage_root)} && du -scB1 --files0-from=- 2>/dev/null | tail -n 1 | "
            "awk '{print $1}'")
