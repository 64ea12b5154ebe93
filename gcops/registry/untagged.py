"""Safe --delete-untagged: find manifests no tag reaches, from the storage itself.

Distribution 2.8's own `garbage-collect -m` treats the child manifests of a
tagged image index / manifest list as untagged and deletes them (the image
then answers 404 for its platforms; fixed only in v3). gcops never passes
`-m`. Instead:

1. list every manifest revision and every tag's current link (one `find`);
2. protect what tags reach: the tagged manifests and, for indexes and lists,
   their children, recursively (index blobs are read on the host by awk);
3. candidates = revisions - protected, per repository;
4. inside the read-only window, re-list the tags (a push may have tagged a
   candidate, or pushed an index whose child it is, before the window), drop
   what became protected, and remove only the candidates' revision links (and
   tag history links to them), exactly what `-m` would remove for them;
5. the registry's ordinary GC (without -m) then deletes their blobs.

Pure functions parse and decide; the `*_command` functions name the static
host scripts (hostside/sh) that read the storage, the root passed as an argument.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from gcops.hostside import scripts
from gcops.storage.filesystem import parse_bytes

HEX = re.compile(r"^[0-9a-f]{64}$")
REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


@dataclass
class RepoManifests:
    revisions: set[str] = field(default_factory=set)          # hex digests with a revision link
    tagged: set[str] = field(default_factory=set)             # hex digests some tag currently points to


def listing_command(root: str, tags_only: bool = False, repos: tuple[str, ...] = ()) -> str:
    """`path<TAB>link content` for revision links (unless tags_only) and tag current links
    (hostside/sh/list_links.sh); with `repos`, only under those repositories (missing ones are skipped)."""
    return scripts.command("list_links", root, "tags" if tags_only else "all", *(r for r in repos if REPO.match(r)))


def parse_listing(text: str) -> dict[str, RepoManifests]:
    repos: dict[str, RepoManifests] = {}
    for line in text.splitlines():
        path, _, content = line.partition("\t")
        if "/_manifests/" not in path:
            continue
        repo_part, rest = path.split("/_manifests/", 1)
        repo = repo_part.removeprefix("repositories/")
        digest = content.strip().removeprefix("sha256:")
        if not REPO.match(repo) or not HEX.match(digest):
            continue
        state = repos.setdefault(repo, RepoManifests())
        if rest.startswith("revisions/"):
            state.revisions.add(digest)
        elif rest.startswith("tags/") and rest.endswith("/current/link"):
            state.tagged.add(digest)
    return repos


def index_contents_command(root: str) -> str:
    """stdin: hex digests, one a line; prints `hex<TAB>json` for those whose blob is an index/list
    (hostside/sh/read_indexes.sh)."""
    return scripts.command("read_indexes", root)


def parse_index_contents(text: str) -> dict[str, set[str]]:
    """hex -> hex digests of its child manifests."""
    children: dict[str, set[str]] = {}
    for line in text.splitlines():
        digest, _, body = line.partition("\t")
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        kids = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(kids, list):
            continue
        found = set()
        for kid in kids:
            value = str(kid.get("digest", "")) if isinstance(kid, dict) else ""
            hexpart = value.removeprefix("sha256:")
            if HEX.match(hexpart):
                found.add(hexpart)
        children[digest] = found
    return children


def protected(repo: RepoManifests, children_of: dict[str, set[str]]) -> set[str]:
    """Tagged manifests and everything an index among them reaches."""
    return reached(repo.tagged, children_of)


def reached(digests: set[str], children_of: dict[str, set[str]]) -> set[str]:
    """`digests` and every manifest an index among them reaches, recursively."""
    seen, todo = set(), list(digests)
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        todo.extend(children_of.get(digest, ()))
    return seen


def candidates(repos: dict[str, RepoManifests], children_of: dict[str, set[str]]) -> dict[str, set[str]]:
    out = {}
    for name, repo in repos.items():
        doomed = repo.revisions - protected(repo, children_of)
        if doomed:
            out[name] = doomed
    return out


def unread(repos: dict[str, RepoManifests], children_of: dict[str, set[str]], read: set[str]) -> set[str]:
    """Digests whose blobs must still be read to know every protected manifest."""
    need = set()
    for repo in repos.values():
        for digest in protected(repo, children_of):
            if digest not in read:
                need.add(digest)
    return need


def links_size_command(root: str) -> str:
    """stdin: `repo<TAB>hex` lines; on-disk bytes of the links unlink_manifests.sh would remove
    (hostside/sh/link_bytes.sh: GNU and BusyBox alike; exits non-zero when it cannot sum)."""
    return scripts.command("link_bytes", root)


def delete_input(doomed: dict[str, set[str]]) -> bytes:
    lines = []
    for repo in sorted(doomed):
        if not REPO.match(repo):
            continue
        lines.extend(f"{repo}\t{d}" for d in sorted(doomed[repo]) if HEX.match(d))
    return ("\n".join(lines) + "\n").encode("ascii") if lines else b""


def refs_command(root: str) -> str:
    """stdin: hex digests of manifests; prints `hex ref-hex ref-hex ...` (every sha256 its blob names)
    (hostside/sh/manifest_refs.sh)."""
    return scripts.command("manifest_refs", root)


def parse_refs(text: str) -> dict[str, set[str]]:
    refs = {}
    for line in text.splitlines():
        digest, *named = line.split()
        if HEX.match(digest):
            refs[digest] = {n for n in named if HEX.match(n)}
    return refs


def freed_by(doomed: dict[str, set[str]], repos: dict[str, RepoManifests],
             refs: dict[str, set[str]]) -> set[str]:
    """Blob digests that removing `doomed` leaves unreferenced (what GC would then also delete)."""
    kept = set()
    for name, repo in repos.items():
        for digest in repo.revisions - doomed.get(name, set()):
            kept.add(digest)
            kept |= refs.get(digest, set())
    gone = set()
    for digests in doomed.values():
        for digest in digests:
            gone.add(digest)
            gone |= refs.get(digest, set())
    return gone - kept


class UntaggedScan:
    """The host-side I/O around the pure functions above, for one storage root."""

    def __init__(self, host, root: str):
        self.host, self.root = host, root
        self.repos: dict[str, RepoManifests] = {}
        self.children_of: dict[str, set[str]] = {}
        self.read: set[str] = set()

    def find(self) -> dict[str, set[str]]:
        """Untagged manifests no tag reaches (reads only; a few round trips)."""
        self.repos = parse_listing(self.host.run(listing_command(self.root), timeout=None).text)
        self._read_indexes()
        return candidates(self.repos, self.children_of)

    def recheck(self, doomed: dict[str, set[str]]) -> dict[str, set[str]]:
        """Inside the window: drop candidates that a tag, or a tagged index, reaches now."""
        now = parse_listing(self.host.run(listing_command(self.root, tags_only=True), timeout=None).text)
        for name, state in now.items():
            self.repos.setdefault(name, RepoManifests()).tagged = state.tagged
        self._read_indexes()
        result = {}
        for name, digests in doomed.items():
            left = digests - protected(self.repos.get(name, RepoManifests()), self.children_of)
            if left:
                result[name] = left
        return result

    def freed(self, doomed: dict[str, set[str]]) -> set[str]:
        """For plan: blob digests the removal of `doomed` would let GC delete (reads every manifest)."""
        every = sorted({d for repo in self.repos.values() for d in repo.revisions})
        if not every:
            return set()
        out = self.host.run(refs_command(self.root), input=("\n".join(every) + "\n").encode("ascii"),
                            timeout=None).text
        return freed_by(doomed, self.repos, parse_refs(out))

    def links_bytes(self, doomed: dict[str, set[str]]) -> int:
        data = delete_input(doomed)
        if not data:
            return 0
        return parse_bytes(self.host.run(links_size_command(self.root), input=data, timeout=None).text,
                           "link_bytes.sh")

    def reach(self, digests: set[str]) -> set[str]:
        """`digests` and every manifest an index among them reaches, reading index blobs as needed."""
        while True:
            found = reached(digests, self.children_of)
            need = found - self.read
            if not need:
                return found
            self._read(need)

    def _read(self, need: set[str]) -> None:
        out = self.host.run(index_contents_command(self.root),
                            input=("\n".join(sorted(need)) + "\n").encode("ascii"), timeout=None).text
        self.children_of.update(parse_index_contents(out))
        self.read |= need

    def _read_indexes(self) -> None:
        while True:
            need = unread(self.repos, self.children_of, self.read)
            if not need:
                return
            self._read(need)
