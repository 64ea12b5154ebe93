"""Parse `registry garbage-collect` output, one line at a time, in constant memory.

Understands (see REFERENCE.md):
- upstream distribution 2.8 / v3 plain lines on stdout
  (`N blobs marked, M blobs and K manifests eligible for deletion`,
  `blob eligible for deletion: <digest>`, `manifest eligible for deletion: ...`)
  and its deletion log lines on stderr (`msg="Deleting blob: /docker/.../<hex>"`,
  `msg="deleting manifest: ..."`);
- GitLab's fork: logrus events in text (`msg="blob eligible for deletion"
  digest=... size_bytes=...`) or JSON (one object per line), all on stderr.

The two streams arrive merged. Eligible blob digests are handed to an optional
callback instead of being kept, so a plan over millions of blobs stays small.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

DIGEST = r"sha256:[0-9a-f]{64}"
_SUMMARY = re.compile(r"^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
_BLOB_ELIGIBLE = re.compile(rf"^blob eligible for deletion: ({DIGEST})")
_MANIFEST_ELIGIBLE = re.compile(rf"^manifest eligible for deletion: \S*?({DIGEST})")
_MARK_MANIFEST = re.compile(rf"^\S+: marking manifest {DIGEST}")
_MARK_BLOB = re.compile(rf"^\S+: marking blob {DIGEST}")
_LOGFMT_PAIR = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')
_DELETING_BLOB = re.compile(r"Deleting blob: \S*/blobs/sha256/[0-9a-f]{2}/([0-9a-f]{64})")
_DELETING_MANIFEST = re.compile(r"deleting manifest: ")
_ERROR = re.compile(r"^(configuration error|failed to garbage collect)(: .*)?$")


@dataclass
class GCSummary:
    """What one GC run said. Counts are None where the output never said."""

    flavour: str = "unknown"           # "upstream" | "gitlab"
    blobs_marked: int | None = None
    blobs_eligible: int | None = None
    manifests_eligible: int | None = None
    blobs_deleted: int = 0             # deletions actually logged
    manifests_deleted: int = 0
    eligible_bytes: int | None = None  # only GitLab's fork prints sizes
    errors: list[str] = field(default_factory=list)
    lines: int = 0

    @property
    def blobs_removed(self) -> int:
        """Blobs a real (not dry) run removed: logged deletions, else the eligible count."""
        if self.blobs_deleted:
            return self.blobs_deleted
        return self.blobs_eligible or 0

    @property
    def manifests_removed(self) -> int:
        if self.manifests_deleted:
            return self.manifests_deleted
        return self.manifests_eligible or 0


class GCOutputParser:
    """Feed lines with `feed`; read `summary`. Keeps counters, not lines."""

    def __init__(self, on_eligible_blob: Callable[[str], None] | None = None):
        self.summary = GCSummary()
        self._on_eligible_blob = on_eligible_blob
        self._eligible_seen = 0
        self._eligible_manifests_seen = 0
        self._gitlab_bytes = 0

    def feed(self, line: str) -> None:
        s = self.summary
        s.lines += 1
        line = line.strip()
        if not line:
            return
        if line.startswith("{"):
            self._feed_event(self._json_event(line))
            return
        if 'msg="' in line or line.startswith("time="):
            self._feed_event(dict((k, v.strip('"')) for k, v in _LOGFMT_PAIR.findall(line)))
            return
        self._feed_plain(line)

    def _feed_plain(self, line: str) -> None:
        s = self.summary
        if _MARK_BLOB.match(line) or _MARK_MANIFEST.match(line):
            s.flavour = "upstream"
        elif m := _SUMMARY.match(line):
            s.flavour = "upstream"
            s.blobs_marked, s.blobs_eligible, s.manifests_eligible = map(int, m.groups())
        elif m := _BLOB_ELIGIBLE.match(line):
            self._eligible(m.group(1))
        elif _MANIFEST_ELIGIBLE.match(line):
            self._eligible_manifests_seen += 1
        elif m := _ERROR.match(line):
            s.errors.append(line)

    @staticmethod
    def _json_event(line: str) -> dict:
        try:
            event = json.loads(line)
        except ValueError:
            return {}
        return event if isinstance(event, dict) else {}

    def _feed_event(self, ev: dict) -> None:
        s = self.summary
        msg = str(ev.get("msg", ""))
        if _DELETING_BLOB.search(msg):
            s.blobs_deleted += 1
            return
        if _DELETING_MANIFEST.match(msg):
            s.manifests_deleted += 1
            return
        if msg == "blob eligible for deletion":
            s.flavour = "gitlab"
            self._eligible(str(ev.get("digest", "")))
            self._gitlab_bytes += _int(ev.get("size_bytes")) or 0
        elif msg == "manifest eligible for deletion":
            s.flavour = "gitlab"
            self._eligible_manifests_seen += 1
        elif msg == "mark stage complete":
            s.flavour = "gitlab"
            s.blobs_marked = _int(ev.get("blobs_marked"))
            s.blobs_eligible = _int(ev.get("blobs_to_delete"))
            s.manifests_eligible = _int(ev.get("manifests_to_delete"))
            estimate = _int(ev.get("storage_use_estimate_bytes"))
            if estimate is not None:
                s.eligible_bytes = estimate
        elif msg in ("deleting blob", "blob deleted"):
            s.blobs_deleted += 1
        elif msg in ("deleting manifest", "manifest deleted"):
            s.manifests_deleted += 1
        elif str(ev.get("level", "")) in ("error", "fatal", "panic"):
            s.errors.append(msg or str(ev))

    def _eligible(self, digest: str) -> None:
        self._eligible_seen += 1
        if self._on_eligible_blob is not None and digest:
            self._on_eligible_blob(digest)

    def finish(self) -> GCSummary:
        """Fill counts the output only implied (lines seen, no summary line)."""
        s = self.summary
        if s.blobs_eligible is None and self._eligible_seen:
            s.blobs_eligible = self._eligible_seen
        if s.manifests_eligible is None and self._eligible_manifests_seen:
            s.manifests_eligible = self._eligible_manifests_seen
        if s.flavour == "gitlab" and s.eligible_bytes is None and self._gitlab_bytes:
            s.eligible_bytes = self._gitlab_bytes
        return s


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
