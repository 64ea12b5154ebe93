"""Retention for one instance: planned before the window, applied inside it (after read-only is verified).

Why in the read-only window and through the storage, not the registry API:
distribution deletes manifests by digest only (`DELETE /v2/<repo>/manifests/<digest>`
untags EVERY tag on that digest; 2.8 has no tag delete), and a push between an
API check and the delete could be lost. Inside the window no push can land: each
tag is re-listed and the rules evaluated again, a tag is removed only if it still
points at the digest the plan saw and the rules still delete it, and only its own
directory (`_manifests/tags/<tag>`) goes. What that leaves untagged (the manifest,
and an index's children, unless a remaining tag reaches them) then loses its
revision links exactly like `--delete-untagged` (registry/untagged.py), and the
registry's own GC (never `-m`) deletes the blobs in the same run.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import structlog

from gcops.config import RetentionRule
from gcops.hostside import scripts
from gcops.errors import ParseError, WindowFailed
from gcops.transport.hosts import Host
from gcops.state.step_figures import StepFigures, StepStatus
from gcops.errors import Refused
from gcops.registry.untagged import (HEX, REPO, RepoManifests, UntaggedScan, delete_input, listing_command,
                                     parse_listing, reached)
from gcops.storage.filesystem import parse_bytes
from gcops.retention.listing import ConfigReader, parse_tags
from gcops.retention.policy import Deletion, TagFact, confirmed, evaluate, left_with_tags

SUPPORTED_DRIVERS = ("filesystem",)
MAX_NAMED_REPOSITORIES = 2000   # repositories named on a `find` command line (~60 KiB); more: list them all


class RetentionRefused(Refused):
    """The rules would empty a repository (or cannot run on this storage): nothing was touched."""


def by_repository(deletions: Sequence[Deletion]) -> dict[str, set[str]]:
    """repository -> hex digests the deleted tags pointed to."""
    out: dict[str, set[str]] = defaultdict(set)
    for d in deletions:
        out[d.repository].add(d.digest.removeprefix("sha256:"))
    return out


def orphans(scan: UntaggedScan, remaining: dict[str, set[str]], deleted: dict[str, set[str]]) -> dict[str, set[str]]:
    """Manifests (with revision links) reached from `deleted` and not from any `remaining` tag, per repository.

    `scan.repos` must hold the revisions. Index blobs are read through `scan`, for every repository
    at once (a round trip per nesting level, not per repository).
    """
    kept = {repo: remaining.get(repo, set()) for repo in deleted}
    scan.reach(set().union(*deleted.values(), *kept.values()))
    out = {}
    for repo, digests in deleted.items():
        gone = reached(digests, scan.children_of) - reached(kept[repo], scan.children_of)
        gone &= scan.repos.get(repo, RepoManifests()).revisions
        if gone:
            out[repo] = gone
    return out


def unlinked(outcome) -> int:
    """How many revision links unlink_manifests.sh removed. Raises ParseError when it did not say."""
    value = outcome.kv.get("unlinked", "")
    if not value.isdigit():
        raise ParseError(f"unlink_manifests.sh gave no count: {outcome.text.strip()[-200:]!r}")
    return int(value)


def parse_outcomes(text: str) -> dict[tuple[str, str], str]:
    """`delete_tags.sh` output -> (repository, tag) -> deleted | changed | gone | failed."""
    outcomes = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            outcomes[(parts[1], parts[2])] = parts[0]
    return outcomes


class RetentionStep:
    """`prepare` before the window (what goes; refuses an emptied repository), `apply` inside it.

    A window step (gcops.maintenance.in_window): `name`, `apply(window)`, `status` and `figures`
    (manifests unlinked; the SPEC `tags_deleted` entries, set as soon as the tags are gone).
    """

    name = "retention"

    def __init__(self, rules: Sequence[RetentionRule], log=None):
        self.rules = tuple(rules)
        self.log = log or structlog.get_logger()
        self.planned: list[Deletion] = []
        self.tags: list[TagFact] = []        # as prepare saw them
        self.status = StepStatus.PLANNED
        self.figures = StepFigures()
        self._configs: ConfigReader | None = None

    @staticmethod
    def listing_command(root: str, only_named: bool = False) -> str:
        """The command listing every tag with its digest and push time (prepare), or with `only_named`
        those of the repositories named on stdin (apply: the window re-lists only what it may change)."""
        return scripts.command("list_tags", root, "-") if only_named else scripts.command("list_tags", root)

    @staticmethod
    def delete_command(root: str) -> str:
        """The command removing re-checked tags inside the window (stdin: repository<TAB>tag<TAB>hex)."""
        return scripts.command("delete_tags", root)

    @staticmethod
    def unlink_command(root: str) -> str:
        """The command unlinking the manifests deleted tags left untagged (stdin: repository<TAB>hex)."""
        return scripts.command("unlink_manifests", root)

    def affected(self) -> tuple[str, ...]:
        """The repositories with planned deletions: all the window reads and changes."""
        return tuple(sorted({d.repository for d in self.planned}))

    def _facts(self, host: Host, root: str, repos: set[str] | None = None) -> tuple[float, list[TagFact]]:
        """(host's now, tags) of every repository, or of `repos` only."""
        if repos is None:
            out = host.run(self.listing_command(root), timeout=None).text
        else:
            names = "".join(f"{r}\n" for r in sorted(repos) if REPO.match(r)).encode("ascii")
            out = host.run(self.listing_command(root, only_named=True), input=names, timeout=None).text
        now, tags = parse_tags(out)
        if any(rule.age_from == "created" for rule in self.rules):
            if self._configs is None or self._configs.host is not host:
                docs = self._configs.docs if self._configs else {}
                self._configs = ConfigReader(host, root)
                self._configs.docs.update(docs)
            tags = self._configs.with_created(tags)
        return now, tags

    def prepare(self, host: Host, root: str, driver: str | None = "filesystem") -> list[Deletion]:
        """List the tags and evaluate the rules (reads only). Raises RetentionRefused, HostError."""
        if driver not in SUPPORTED_DRIVERS:
            raise RetentionRefused(f"retention: storage driver {driver or 'unknown'} is not supported yet "
                                   f"(only {', '.join(SUPPORTED_DRIVERS)}); run with --no-retention")
        now, self.tags = self._facts(host, root)
        evaluation = evaluate(self.rules, self.tags, now)
        self.planned = evaluation.deletions   # kept on refusal too: plan shows the other repositories' deletions
        if evaluation.refused:
            raise RetentionRefused("; ".join(e.message() for e in evaluation.refused))
        if evaluation.unknown_age:
            self.log.warning("retention_age_unknown", kept=[f"{t.repository}:{t.tag}" for t in evaluation.unknown_age])
        self.log.info("retention_planned", tags=len(self.planned), repositories=len(by_repository(self.planned)))
        return self.planned

    def left_untagged(self, scan: UntaggedScan) -> dict[str, set[str]]:
        """For plan: manifests the planned deletions would leave untagged (`scan.find()` already ran)."""
        return orphans(scan, left_with_tags(self.tags, self.planned), by_repository(self.planned))

    def removal_bytes(self, host: Host, root: str, doomed: dict[str, set[str]]) -> int:
        """For plan: on-disk bytes of the planned tags' directories and of the revision (and tag history)
        links of `doomed`, each path counted once."""
        lines = [f"tag\t{d.repository}\t{d.tag}\n" for d in self.planned]
        lines += [f"revision\t{repo}\t{hexd}\n" for repo in sorted(doomed) for hexd in sorted(doomed[repo])
                  if REPO.match(repo) and HEX.match(hexd)]
        if not lines:
            return 0
        out = host.run(scripts.command("removal_bytes", root), input="".join(lines).encode("ascii"), timeout=None)
        return parse_bytes(out.text, "removal_bytes.sh")

    def apply(self, window) -> list[dict]:
        """Inside the verified window (an in_window.InWindow): delete the planned tags that the rules
        still delete, with the same digest, then remove the revision links of what they leave untagged.
        Reads end by the window's deadline; the deletions run through gc.sh (lock held, stopped with
        the window). Gives the SPEC `tags_deleted` entries. Raises RetentionRefused (nothing deleted)
        when the storage changed so that a repository would now be emptied; WindowFailed."""
        if not self.planned:
            return []
        host, root = window.host, window.node.facts.storage_root
        # rules work per repository: those without planned deletions need not be read again
        affected = {d.repository for d in self.planned}
        now, tags = self._facts(host, root, affected)
        evaluation = evaluate(self.rules, [t for t in tags if t.repository in affected], now)
        if evaluation.refused:
            raise RetentionRefused("; ".join(e.message() for e in evaluation.refused))
        todo = confirmed(self.planned, evaluation.deletions)
        if len(todo) < len(self.planned):
            self.log.info("retention_spared", tags=[f"{d.repository}:{d.tag}" for d in self.planned if d not in todo])
        data = "".join(f"{d.repository}\t{d.tag}\t{d.digest[7:]}\n" for d in todo).encode("ascii")
        outcomes = parse_outcomes(window.change("retention's tag deletion", self.delete_command(root), data).text)
        deleted = [d for d in todo if outcomes.get((d.repository, d.tag)) == "deleted"]
        failed = [f"{d.repository}:{d.tag}" for d in todo if outcomes.get((d.repository, d.tag)) == "failed"]
        self.figures.tags_deleted = [{"repository": d.repository, "tag": d.tag, "digest": d.digest}
                                     for d in deleted]
        self.figures.manifests_deleted = self._reclaim(window, root, deleted) if deleted else 0
        self.log.info("retention_applied", tags_deleted=len(deleted), manifests_unlinked=self.figures.manifests_deleted)
        if failed:   # a person must look (permissions?): no GC on a storage gcops could not change as planned
            raise WindowFailed(f"{host.name}: retention could not remove {len(failed)} tag director"
                               f"{'y' if len(failed) == 1 else 'ies'} under {root}: {', '.join(failed[:5])}")
        return self.figures.tags_deleted

    def _reclaim(self, window, root: str, deleted: list[Deletion]) -> int:
        """Remove the revision links (and tag history links) of the manifests `deleted` left untagged:
        what `--delete-untagged` removes for them (registry/untagged.py), in one `rm` for all."""
        host = window.host
        scan = UntaggedScan(host, root)
        affected = tuple(sorted({d.repository for d in deleted}))   # the rest of the storage is not read,
        if len(affected) > MAX_NAMED_REPOSITORIES:                   # unless the names would not fit a command line
            affected = ()
        scan.repos = parse_listing(host.run(listing_command(root, repos=affected), timeout=None).text)
        remaining = {name: state.tagged for name, state in scan.repos.items()}
        data = delete_input(orphans(scan, remaining, by_repository(deleted)))
        if not data:
            return 0
        return unlinked(window.change("retention's manifest unlinking", self.unlink_command(root), data))
