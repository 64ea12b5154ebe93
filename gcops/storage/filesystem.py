"""Measure a filesystem-driver storage tree on its host: one static script, one pass.

`measure_command` runs `gcops/hostside/sh/measure.sh` (POSIX sh; GNU tools and
BusyBox applets alike): one `find ... -exec stat` walk sums allocated blocks
per entry, directories included, as `du -sB1` counts them, and counts blob
`data` files on the way; `stat -f` gives the filesystem's used bytes.
`parse_measurement` is pure and tested with recorded outputs. A figure that
could not be measured raises MeasurementError; it never reads as 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gcops.errors import ParseError
from gcops.hostside import scripts
from gcops.hostside.kv import parse_kv

BLOB_DATA = "docker/registry/v2/blobs/sha256/"
_FIELDS = ("fs_used_bytes", "tree_bytes", "blobs")
_HEX = re.compile(r"[0-9a-f]+")


class MeasurementError(ParseError):
    """The storage could not be measured."""


@dataclass(frozen=True)
class StorageSnapshot:
    storage_bytes: int     # on-disk bytes of the tree (du -sB1 semantics)
    fs_used_bytes: int | None   # used bytes of the filesystem holding it (df); None on object storage
    blobs: int             # blob data files


def measure_command(storage_root: str) -> str:
    """Shell command printing `fs_used_bytes=`, `tree_bytes=`, `blobs=` lines for `storage_root`
    (exits non-zero, with a line on stderr, when it cannot measure)."""
    return scripts.command("measure", storage_root)


def parse_measurement(output: str) -> StorageSnapshot:
    """The snapshot in `measure_command` output (other key=value lines are ignored).
    Raises MeasurementError when a figure is missing or not a whole number."""
    kv = parse_kv(output)
    try:
        fs_used, tree, blobs = (int(kv[k]) for k in _FIELDS)
    except (KeyError, ValueError) as exc:
        raise MeasurementError(f"unexpected measurement output: {output.strip()[-200:]!r}") from exc
    if min(fs_used, tree, blobs) < 0:
        raise MeasurementError(f"negative figure in measurement output: {output.strip()[-200:]!r}")
    return StorageSnapshot(storage_bytes=tree, fs_used_bytes=fs_used, blobs=blobs)


def parse_bytes(output: str, what: str) -> int:
    """The byte count a summing script printed last (`N` or `bytes=N`). Raises MeasurementError naming
    `what` when there is none: a sum that could not be read is never 0."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    value = lines[-1].removeprefix("bytes=") if lines else ""
    if not value.isdigit():
        raise MeasurementError(f"{what} gave no byte count: {output.strip()[-200:]!r}")
    return int(value)


def blob_paths_input(digests) -> bytes:
    """Blob directory paths relative to the storage root, one per line, for `blobs_size_command`.
    Raises MeasurementError for a digest that is not `sha256:<hex>`."""
    out = bytearray()
    for digest in digests:
        algo, _, hexpart = digest.rpartition(":")
        if algo not in ("", "sha256") or len(hexpart) < 3 or not _HEX.fullmatch(hexpart):
            raise MeasurementError(f"not a sha256 blob digest: {digest!r}")
        out += f"{BLOB_DATA}{hexpart[:2]}/{hexpart}\n".encode("ascii")
    return bytes(out)


def blobs_size_command(storage_root: str) -> str:
    """Shell command printing the on-disk bytes (du -sB1 semantics) of the blob dirs named on
    stdin (`blob_paths_input`); a dir already gone counts 0; exits non-zero when it cannot sum."""
    return scripts.command("blob_bytes", storage_root)
