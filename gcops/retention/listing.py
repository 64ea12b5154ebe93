"""What retention needs to know from the storage: every tag with its digest and push time, and
(for `age_from = "created"`) the image config's `created` field. Commands are the static host
scripts in gcops/hostside/sh; the parsers are pure and tested with recorded output.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime, timezone

from gcops.errors import ParseError
from gcops.hostside import scripts
from gcops.transport.hosts import Host
from gcops.registry.untagged import HEX, REPO
from gcops.retention.policy import TagFact

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
CREATED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MAX_ROUNDS = 4          # tag manifest -> (index child manifest ->) config


class ListingError(ParseError):
    """The host's answer cannot be understood."""


def parse_tags(text: str) -> tuple[float, list[TagFact]]:
    """`list_tags.sh` output -> (host's now, tags). Lines that are not a valid tag are skipped.

    Raises ListingError when the host's clock line is missing or not a number.
    """
    now = None
    tags = []
    for line in text.splitlines():
        if line.startswith("now="):
            try:
                now = float(line[4:].strip() or "nan")
            except ValueError:
                now = None
            continue
        parts = line.split("\t")
        if len(parts) != 3 or "/_manifests/tags/" not in parts[0]:
            continue
        path, content, mtime = parts
        repo_part, rest = path.split("/_manifests/tags/", 1)
        repo = repo_part.removeprefix("repositories/")
        tag = rest.removesuffix("/current/link")
        digest = content.strip()
        if not (REPO.match(repo) and TAG.match(tag) and digest.startswith("sha256:")
                and HEX.match(digest[7:])):
            continue
        try:
            pushed = float(mtime)
        except ValueError:
            pushed = None
        tags.append(TagFact(repo, tag, digest, pushed))
    if now is None or now != now:
        raise ListingError(f"tag listing without the host's clock: {text[:200]!r}")
    return now, tags


def parse_blobs(text: str) -> dict[str, dict]:
    """`read_blobs.sh` output -> hex -> parsed JSON document (blobs that are not JSON objects are left out)."""
    docs = {}
    for line in text.splitlines():
        digest, _, body = line.partition("\t")
        if not HEX.match(digest):
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        if isinstance(doc, dict):
            docs[digest] = doc
    return docs


def parse_created(value: object) -> float | None:
    """RFC 3339 `created` (nanoseconds allowed) -> epoch seconds; None when absent or malformed."""
    match = CREATED.match(value) if isinstance(value, str) else None
    if not match:
        return None
    base, fraction, zone = match.groups()
    text = base + (fraction or "")[:7] + ("+00:00" if zone == "Z" else zone)
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


def _hex(descriptor: object) -> str | None:
    value = descriptor.get("digest") if isinstance(descriptor, dict) else None
    hexpart = value.removeprefix("sha256:") if isinstance(value, str) else ""
    return hexpart if HEX.match(hexpart) else None


def created_of(digest: str, docs: dict[str, dict], missing: set[str], depth: int = 0) -> float | None:
    """The `created` of the image `digest` names: its config's field; for an index or list, the
    newest of its children's. Digests still to be read are added to `missing`."""
    if digest not in docs:
        missing.add(digest)
        return None
    doc = docs[digest]
    if isinstance(doc.get("manifests"), list) and depth == 0:
        found = [created_of(h, docs, missing, depth + 1) for h in map(_hex, doc["manifests"]) if h]
        known = [c for c in found if c is not None]
        return max(known) if known else None
    config = _hex(doc.get("config"))
    if config is None:
        return parse_created(doc.get("created"))   # a config blob itself
    if config not in docs:
        missing.add(config)
        return None
    return parse_created(docs[config].get("created"))


class ConfigReader:
    """Reads manifests and image configs from the host for `created`, each blob once."""

    def __init__(self, host: Host, root: str):
        self.host, self.root = host, root
        self.docs: dict[str, dict] = {}
        self.unreadable: set[str] = set()    # missing, or not a JSON object: never asked for again

    def with_created(self, tags: list[TagFact]) -> list[TagFact]:
        """`tags` with `created` filled in (a few round trips). Raises HostError."""
        digests = {t.digest[7:] for t in tags}
        for _ in range(MAX_ROUNDS):
            missing: set[str] = set()
            for digest in digests:
                created_of(digest, self.docs, missing)
            missing -= self.unreadable
            if not missing:
                break
            out = self.host.run(scripts.command("read_blobs", self.root),
                                input=("\n".join(sorted(missing)) + "\n").encode("ascii"), timeout=None).text
            found = parse_blobs(out)
            self.docs.update(found)
            self.unreadable |= missing - set(found)
        return [replace(t, created=created_of(t.digest[7:], self.docs, set())) for t in tags]
