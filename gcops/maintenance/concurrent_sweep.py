"""`--mode concurrent`: mark while writes are accepted; refuse writes only for the delta and the sweep.

Three steps on the GC node, each a static host script (gcops/hostside/sh/concurrent_*.sh):

1. `mark` (writes accepted): a marker file stamped by the storage's own clock in the storage root
   (beside `docker/`, never inside the registry's tree), then the registry's own
   `garbage-collect --dry-run`. The blobs it calls eligible are the candidate set C, kept in a
   host file (constant memory here, however much garbage there is). Then, writes still accepted,
   the delta's first part: a second marker, the links written since the first, and the list of
   directories under `repositories/` whose mtime the window checks (every one but a leaf whose link
   predates the first marker: creating a link changes its directory's mtime).
2. The caller enters the write-refused window and verifies it (a write answers 405).
3. `collect` (inside the window): the delta (every link under `repositories/` newer than the
   marker: those the mark found, and those under a watched directory newer than the second marker;
   the digest it names, and every digest the manifests it names mention, recursively through
   index/list children) is protected; the rest of C leaves the registry's tree the way the
   registry's own sweep removes a blob (the directory `blobs/sha256/<xx>/<hex>`), renamed into the
   run's trash beside `docker/`, which `cleanup` empties once writes are accepted again.

Why this loses nothing: a blob is referenced after the window only through a link. A link the
dry-run's mark did not see was written after the mark began, so after the marker (the mark
starts only once the storage clock has moved past the marker's mtime): the delta sees it and
protects what it names (concurrent_mark.sh's header says why its list and the watched directories
find every such link). A link the mark saw made the blob marked, so it is not in C. Writes stop
(verified) before the delta is read and resume only after the sweep.

`ConcurrentCollection` is the I/O around the pure parsers below, for one storage root.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass

import structlog

from gcops.errors import HostError
from gcops.hostside import scripts
from gcops.hostside.kv import as_float, as_int, parse_kv_all, tail

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MARKER_PREFIX = ".gcops-mark-"


class ConcurrentError(HostError):
    """A concurrent-mode step failed; nothing was swept by it. The message is one line for the user."""


@dataclass(frozen=True)
class MarkOutcome:
    """What the mark gave: the candidate count C (None when the GC failed)."""

    gc_exit: int
    candidates: int | None
    gc_seconds: float | None
    marked_at: float | None       # host clock, seconds since the epoch
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeltaOutcome:
    links: int                    # links newer than the marker
    manifests_read: int
    protected: int                # distinct digests kept alive by the delta
    bad_links: int                # tag current links without a valid digest (a killed request's leftovers)
    unreadable: tuple[str, ...] = ()   # manifests named by new links whose blob could not be read


@dataclass(frozen=True)
class SweepOutcome:
    candidates: int
    spared: int                   # candidates the delta protected
    swept: int                    # blob directories taken out of the registry's tree
    by: str = "remove"            # "move": renamed into the run's trash (emptied after the window); "remove"


@dataclass(frozen=True)
class CollectOutcome:
    delta: DeltaOutcome
    sweep: SweepOutcome
    complete: bool = True         # False: stopped between sweep batches (max_window, SIGTERM)
    delta_seconds: float | None = None
    sweep_seconds: float | None = None


def _int(kv: dict[str, list[str]], key: str) -> int | None:
    return as_int(kv.get(key, [None])[-1])


def _float(kv: dict[str, list[str]], key: str) -> float | None:
    return as_float(kv.get(key, [None])[-1])


def parse_mark(text: str, exit_code: int = 0) -> MarkOutcome:
    """Parse concurrent_mark.sh output. Raises ConcurrentError when the script itself failed."""
    kv = parse_kv_all(text)
    if exit_code != 0:
        problem = next((f"{k}={v[-1]}" for k, v in kv.items()
                        if k in ("storage_missing", "workdir_failed", "marker_failed", "clock_stuck",
                                 "candidates_failed")), text.strip()[-200:] or f"exit {exit_code}")
        raise ConcurrentError(f"concurrent mark failed ({problem}); nothing was changed")
    gc_exit = _int(kv, "gc_exit")
    if gc_exit is None:
        raise ConcurrentError(f"concurrent mark gave no GC exit status: {text.strip()[-200:]!r}")
    start, end = _float(kv, "gc_start"), _float(kv, "gc_end")
    return MarkOutcome(gc_exit=gc_exit, candidates=_int(kv, "candidates") if gc_exit == 0 else None,
                       gc_seconds=(end - start) if start is not None and end is not None else None,
                       marked_at=_float(kv, "marked_at"), errors=tuple(kv.get("gc_error", ())))


def parse_collect(text: str, exit_code: int = 0) -> CollectOutcome:
    """Parse concurrent_collect.sh output (delta counts, then sweep counts). Raises ConcurrentError when
    the script failed, gave no counts, or an unreadable manifest kept it from sweeping."""
    kv = parse_kv_all(text)
    if "clock_went_back" in kv:
        raise ConcurrentError("the storage's clock went back since the mark (links written since could look "
                              "older than the marker); nothing was swept")
    counts = [_int(kv, k) for k in ("links", "manifests_read", "protected", "bad_links")]
    status = _int(kv, "collect_exit")
    if exit_code != 0 or status is None or any(c is None for c in counts):
        swept = "nothing was swept" if _int(kv, "swept") is None else f"{_int(kv, 'swept')} blobs were swept"
        raise ConcurrentError(f"the concurrent collector failed (exit {exit_code}: {tail(text)}); {swept}")
    unreadable = tuple(d for d in kv.get("unreadable", ()) if DIGEST.match(d))
    if len(unreadable) != (_int(kv, "unreadable_count") or 0):
        raise ConcurrentError(f"the delta's output is inconsistent ({tail(text)}); nothing was swept")
    links, read, protected, bad = counts
    delta = DeltaOutcome(links=links, manifests_read=read, protected=protected, bad_links=bad,
                         unreadable=unreadable)
    if unreadable:
        raise ConcurrentError(f"a manifest written during the mark cannot be read "
                              f"({', '.join(unreadable[:3])}); nothing was swept")
    if status == 1:
        raise ConcurrentError("the concurrent collector was stopped before the sweep; nothing was swept")
    sweep_counts = [_int(kv, k) for k in ("candidates", "spared", "swept")]
    if any(c is None for c in sweep_counts):
        raise ConcurrentError(f"the sweep gave no counts ({tail(text)})")
    start, mid, end = (_float(kv, k) for k in ("delta_start", "delta_end", "sweep_end"))
    by = "move" if kv.get("sweep_by", [""])[-1] == "move" else "remove"
    return CollectOutcome(delta=delta, sweep=SweepOutcome(*sweep_counts, by=by), complete=status == 0,
                          delta_seconds=mid - start if start is not None and mid is not None else None,
                          sweep_seconds=end - mid if mid is not None and end is not None else None)


def work_dir(host_state_dir: str, run_id: str) -> str:
    """Where the mark keeps its GC log, candidates and delta on the host (gcops-owned)."""
    return posixpath.join(host_state_dir, f"concurrent-{run_id}")


def marker_path(storage_root: str, run_id: str) -> str:
    return posixpath.join(storage_root, f"{MARKER_PREFIX}{run_id}")


def describe(storage_root: str, gc_dry_run: str) -> list[str]:
    """What concurrent mode does, step by step, for `plan` and `run --dry-run`."""
    return [
        "writes accepted: create a marker file in the storage root, stamped by the storage's clock "
        f"({marker_path(storage_root, '<run id>')})",
        f"writes accepted: run the registry's own GC in dry-run: {gc_dry_run}; "
        "the blobs it calls eligible are the candidates",
        "writes accepted: a second marker; list the links written since the first, and the directories under "
        "repositories/ whose change the window looks for",
        "enter the write-refused window and verify it (a write answers 405)",
        "in the window: protect every digest named by a link under repositories/ newer than the marker (those "
        "listed, and those under a watched directory changed since the second marker), "
        "and every digest the manifests it names mention (index/list children included)",
        "in the window: move the other candidates' blob directories (blobs/sha256/<xx>/<hex>, what the "
        f"registry's own sweep deletes) into {posixpath.join(storage_root, '.gcops-trash-<run id>')}",
        "leave the window (restore, verify, unlock), then empty the trash and remove the markers",
    ]


class ConcurrentCollection:
    """Concurrent-mode GC on one storage root, through one host (the GC node)."""

    def __init__(self, host, *, storage_root: str, workdir: str, run_id: str, gc_dry_run: str, log=None):
        self.host, self.root, self.workdir, self.run_id = host, storage_root, workdir, run_id
        self.gc_dry_run = gc_dry_run
        self.log = log or structlog.get_logger()
        self.mark_outcome: MarkOutcome | None = None

    def mark(self, cancel=None) -> MarkOutcome:
        """Writes accepted: marker, then the GC dry-run -> candidates on the host. Raises ConcurrentError
        (nothing changed: only the marker and the work dir exist, removed by `cleanup`), and
        hosts.Cancelled when `cancel` (a threading.Event) is set while the GC runs."""
        lines: list[str] = []
        code, _ = self.host.stream(scripts.command("concurrent_mark", self.root, self.workdir, self.run_id,
                                                   self.gc_dry_run), lines.append, cancel=cancel)
        outcome = parse_mark("\n".join(lines), code)
        if outcome.gc_exit != 0:
            raise ConcurrentError(f"the GC dry-run failed (exit {outcome.gc_exit}): "
                                  f"{'; '.join(outcome.errors) or 'no output'}; nothing was changed")
        self.mark_outcome = outcome
        self.log.info("concurrent_marked", candidates=outcome.candidates, gc_seconds=outcome.gc_seconds)
        return outcome

    def collector_command(self) -> str:
        """The command that runs inside the window in place of the registry's GC (delta, then sweep)."""
        return scripts.command("concurrent_collect", self.root, self.workdir, self.run_id)

    def collect(self) -> CollectOutcome:
        """Inside the verified window: delta, then sweep, in one round trip. Raises ConcurrentError;
        when the delta cannot say what it keeps alive (an unreadable manifest), nothing is swept."""
        if self.mark_outcome is None:
            raise ConcurrentError("collect before mark")
        result = self.host.run(self.collector_command(), timeout=None, check=False)
        out = parse_collect(result.text, result.exit_code)
        self.log.info("concurrent_collected", links=out.delta.links, manifests_read=out.delta.manifests_read,
                      protected=out.delta.protected, candidates=out.sweep.candidates, spared=out.sweep.spared,
                      swept=out.sweep.swept)
        return out

    def swept_digests_command(self) -> str:
        """Shell command printing the digests the sweep deleted, one a line (for the descriptor cache purge)."""
        return f"cat {shlex.quote(posixpath.join(self.workdir, 'swept'))} 2>/dev/null"

    def cleanup(self) -> bool:
        """Remove the markers, the trash (the swept blobs) and the work dir, stop a dry-run GC still running.
        Runs after the window, before the storage is measured. Gives whether that worked;
        never raises (it runs in `finally` blocks; a lost connection must not hide the run's outcome)."""
        try:
            result = self.host.run(scripts.command("concurrent_cleanup", self.root, self.workdir, self.run_id),
                                   timeout=3600, check=False)
        except HostError as exc:
            self.log.warning("concurrent_cleanup_failed", error=str(exc))
            return False
        return result.exit_code == 0 and "cleaned=yes" in result.text
