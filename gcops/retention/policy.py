"""Retention rules -> which tags go. Pure: no I/O, tested with tables.

GitLab's cleanup-policy order, per repository and per rule covering it:
all tags -> drop `latest` -> keep only `name_regex` matches -> drop
`name_regex_keep` matches -> sort newest first -> drop the first `keep_n` ->
drop those newer than `older_than` -> the rest are deleted. Regexes match the
whole name (GitLab anchors its RE2 patterns).

Several rules may cover one repository: each is applied on its own, as if it
were the only policy, and a tag goes when any of them deletes it (so `keep_n`
of one rule never protects tags another rule targets). A tag whose age cannot
be known (no push time, no readable `created`) is never deleted and sorts as
the newest.

A repository every one of whose tags would go is refused unless every rule
deleting tags in it says `allow_empty = true`: a typo like `name_regex = ".*"`
must not wipe a repository.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from gcops.config import RetentionRule

NEVER_DELETED = "latest"


@dataclass(frozen=True)
class TagFact:
    """One tag as the storage holds it."""
    repository: str
    tag: str
    digest: str                     # "sha256:<hex>" the tag points to
    pushed: float | None            # epoch seconds of the last push (mtime of its current link)
    created: float | None = None    # epoch seconds from the image config's `created`, when read


@dataclass(frozen=True)
class Deletion:
    repository: str
    tag: str
    digest: str
    age_seconds: float
    rule: str                       # label of the first rule deleting it, e.g. "retention[0]"

    def to_dict(self) -> dict:
        """SPEC plan entry: {"repository", "tag", "digest", "age_seconds", "rule"}."""
        return {"repository": self.repository, "tag": self.tag, "digest": self.digest,
                "age_seconds": round(self.age_seconds), "rule": self.rule}

    @property
    def key(self) -> tuple[str, str, str]:
        return self.repository, self.tag, self.digest


@dataclass(frozen=True)
class Emptied:
    """A repository the rules would leave without any tag, and the rules that would do it."""
    repository: str
    rules: tuple[RetentionRule, ...]

    def message(self) -> str:
        named = ", ".join(f"{r.label} (name_regex {r.name_regex.pattern!r})" for r in self.rules)
        return (f"retention would delete every tag of repository {self.repository!r} by {named}; "
                "nothing was touched; fix the rule, or set allow_empty = true in it")


@dataclass
class Evaluation:
    deletions: list[Deletion] = field(default_factory=list)
    refused: list[Emptied] = field(default_factory=list)      # empties a repository, not allowed
    unknown_age: list[TagFact] = field(default_factory=list)  # candidates kept because their age is unknown


def _matches(pattern, name: str) -> bool:
    return pattern is not None and pattern.fullmatch(name) is not None


def covers(rule: RetentionRule, repository: str) -> bool:
    return rule.repositories is None or rule.repositories.fullmatch(repository) is not None


def age_of(fact: TagFact, rule: RetentionRule, now: float) -> float | None:
    """Seconds since the tag was pushed (or its image created); None when unknown."""
    moment = fact.created if rule.age_from == "created" else fact.pushed
    return None if moment is None else max(0.0, now - moment)


def rule_deletes(rule: RetentionRule, tags: Sequence[TagFact], now: float,
                 unknown: list[TagFact] | None = None) -> list[tuple[TagFact, float]]:
    """The tags of ONE repository that `rule` deletes, with their ages (GitLab's order, see module doc)."""
    candidates = [t for t in tags if t.tag != NEVER_DELETED and _matches(rule.name_regex, t.tag)
                  and not _matches(rule.name_regex_keep, t.tag)]
    aged = [(t, age_of(t, rule, now)) for t in candidates]
    # newest first; unknown ages count as the newest (kept); ties by tag name, for a stable plan
    aged.sort(key=lambda pair: (-1.0 if pair[1] is None else pair[1], pair[0].tag))
    if rule.keep_n:
        aged = aged[rule.keep_n:]
    doomed = []
    for fact, age in aged:
        if age is None:
            if unknown is not None:
                unknown.append(fact)
            continue
        if rule.older_than is None or age > rule.older_than:
            doomed.append((fact, age))
    return doomed


def evaluate(rules: Sequence[RetentionRule], tags: Iterable[TagFact], now: float) -> Evaluation:
    """Every deletion the rules make over `tags` (all repositories), and the refused repositories."""
    by_repo: dict[str, list[TagFact]] = defaultdict(list)
    for fact in tags:
        by_repo[fact.repository].append(fact)
    result = Evaluation()
    for repository in sorted(by_repo):
        repo_tags = by_repo[repository]
        chosen: dict[str, tuple[TagFact, float, RetentionRule]] = {}
        deleting: list[RetentionRule] = []
        unknown: list[TagFact] = []
        for rule in rules:
            if not covers(rule, repository):
                continue
            doomed = rule_deletes(rule, repo_tags, now, unknown)
            if doomed:
                deleting.append(rule)
            for fact, age in doomed:
                chosen.setdefault(fact.tag, (fact, age, rule))
        result.unknown_age.extend({f.tag: f for f in unknown if f.tag not in chosen}.values())
        if not chosen:
            continue
        if len(chosen) == len(repo_tags) and not all(r.allow_empty for r in deleting):
            result.refused.append(Emptied(repository, tuple(r for r in deleting if not r.allow_empty)))
            continue
        for tag in sorted(chosen):
            fact, age, rule = chosen[tag]
            result.deletions.append(Deletion(repository, tag, fact.digest, age, rule.label))
    return result


def confirmed(planned: Sequence[Deletion], now: Sequence[Deletion]) -> list[Deletion]:
    """Planned deletions the rules still make on the storage as it is now, pointing at the same digest.

    Inside the window the tags are listed and evaluated again: a tag pushed
    since the plan (new digest, or a new push time that makes it young again)
    is not deleted, and nothing beyond the plan ever is.
    """
    still = {d.key for d in now}
    return [d for d in planned if d.key in still]


def left_with_tags(tags: Iterable[TagFact], deletions: Sequence[Deletion]) -> dict[str, set[str]]:
    """repository -> hex digests its remaining tags point to, once `deletions` are done."""
    gone = {(d.repository, d.tag) for d in deletions}
    remaining: dict[str, set[str]] = defaultdict(set)
    for fact in tags:
        if (fact.repository, fact.tag) not in gone:
            remaining[fact.repository].add(fact.digest.removeprefix("sha256:"))
    return remaining
