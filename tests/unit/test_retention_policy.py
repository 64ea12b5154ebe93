"""Retention rules -> deletions: GitLab's cleanup-policy order, as tables (issue 12)."""
from __future__ import annotations

import re

import pytest

from gcops.config import RetentionRule
from gcops.retention.policy import Deletion, TagFact, confirmed, evaluate, left_with_tags

NOW = 1_800_000_000.0
DAY = 86400.0


def rule(index=0, name=".*", repos=None, keep=None, keep_n=None, older=None, age_from="pushed", allow_empty=False):
    return RetentionRule(index=index, name_regex=re.compile(name), repositories=re.compile(repos) if repos else None,
                         name_regex_keep=re.compile(keep) if keep else None, keep_n=keep_n,
                         older_than=older * DAY if older is not None else None, age_from=age_from,
                         allow_empty=allow_empty)


def tags(repo: str, **ages_in_days) -> list[TagFact]:
    """tag=age in days (None: unknown push time); digests differ per tag."""
    return [TagFact(repo, tag.replace("_", "-"), f"sha256:{i:064x}", None if age is None else NOW - age * DAY)
            for i, (tag, age) in enumerate(ages_in_days.items())]


def deleted(evaluation) -> set[str]:
    return {f"{d.repository}:{d.tag}" for d in evaluation.deletions}


def app(*names):
    return {f"g/app:{n}" for n in names}


CASES = [
    # (rule, tags of g/app by age in days, expected deleted)
    ("everything old goes; latest never", rule(older=7),
     dict(latest=100, a=30, b=8, c=6), app("a", "b")),
    ("keep_n keeps the newest candidates", rule(keep_n=2),
     dict(latest=0, a=1, b=2, c=3, d=4), app("c", "d")),
    ("latest does not count towards keep_n", rule(keep_n=1),
     dict(latest=0, a=5, b=6), app("b")),
    ("keep_n, then older_than on what is left", rule(keep_n=1, older=10),
     dict(latest=0, a=1, b=5, c=20, d=30), app("c", "d")),
    ("name_regex is anchored: 'dev' does not match 'dev-1'", rule(name="dev"),
     dict(latest=0, dev=9, dev_1=9), app("dev")),
    ("name_regex_keep wins over name_regex", rule(name="v.*", keep=r"v\d+\.\d+\.\d+"),
     {"latest": 0, "v1.2.3": 99, "v1.2.3-rc1": 99, "vnext": 99}, app("v1.2.3-rc1", "vnext")),
    ("name_regex_keep is anchored too", rule(keep="v1"),
     dict(latest=0, v1=99, v10=99), app("v10")),
    ("unknown age is never deleted and sorts newest", rule(keep_n=1),
     dict(latest=0, a=None, b=3, c=4), app("b", "c")),
    ("older_than is strict: exactly that old stays", rule(older=7),
     dict(latest=0, a=7, b=7.01), app("b")),
    ("nothing matches: nothing goes", rule(name="feature-.*"),
     dict(latest=0, a=99), set()),
]


@pytest.mark.parametrize("title,r,ages,expected", CASES, ids=[c[0] for c in CASES])
def test_gitlab_order(title, r, ages, expected):
    assert deleted(evaluate([r], tags("g/app", **ages), NOW)) == expected


def test_repositories_scope_a_rule():
    facts = tags("g/app", latest=0, a=30) + tags("other/x", latest=0, a=30)
    assert deleted(evaluate([rule(repos="g/.*")], facts, NOW)) == app("a")
    assert deleted(evaluate([rule(repos="g")], facts, NOW)) == set()          # anchored


def test_several_rules_union_and_first_rule_named():
    facts = tags("g/app", latest=0, dev_1=1, dev_2=2, dev_3=3, rel_1=40, rel_2=50)
    rules = [rule(0, name="rel-.*", older=30), rule(1, name="dev-.*", keep_n=1), rule(2, name=".*", older=45)]
    evaluation = evaluate(rules, facts, NOW)
    assert deleted(evaluation) == app("rel-1", "rel-2", "dev-2", "dev-3")
    assert {d.tag: d.rule for d in evaluation.deletions}["rel-2"] == "retention[0]"
    assert {d.tag: d.rule for d in evaluation.deletions}["dev-3"] == "retention[1]"


def test_a_policy_emptying_a_repository_is_refused_naming_repository_and_rule():
    facts = tags("g/app", a=30, b=40) + tags("g/lib", latest=0, a=30)
    evaluation = evaluate([rule(older=7)], facts, NOW)
    assert [e.repository for e in evaluation.refused] == ["g/app"]
    assert "'g/app'" in evaluation.refused[0].message() and "retention[0]" in evaluation.refused[0].message()
    assert deleted(evaluation) == {"g/lib:a"}       # the refused repository contributes nothing


def test_allow_empty_lets_it_run():
    evaluation = evaluate([rule(older=7, allow_empty=True)], tags("g/app", a=30, b=40), NOW)
    assert not evaluation.refused and deleted(evaluation) == app("a", "b")


def test_allow_empty_must_be_on_every_rule_that_empties_it():
    rules = [rule(0, name="a", allow_empty=True), rule(1, name="b")]
    evaluation = evaluate(rules, tags("g/app", a=30, b=40), NOW)
    assert [r.label for r in evaluation.refused[0].rules] == ["retention[1]"]


def test_age_from_created_uses_the_config_field():
    fact = TagFact("g/app", "repro", "sha256:" + "1" * 64, pushed=NOW - 1 * DAY, created=0.0)   # built at epoch 0
    keep = TagFact("g/app", "other", "sha256:" + "2" * 64, pushed=NOW - 1 * DAY, created=NOW - DAY)
    assert deleted(evaluate([rule(older=7, age_from="created")], [fact, keep], NOW)) == app("repro")
    assert deleted(evaluate([rule(older=7, age_from="pushed")], [fact, keep], NOW)) == set()


def test_deletion_entry_has_the_plan_fields():
    [d] = evaluate([rule(older=7)], tags("g/app", latest=0, a=30), NOW).deletions
    assert d.to_dict() == {"repository": "g/app", "tag": "a", "digest": "sha256:" + "1".rjust(64, "0"),
                           "age_seconds": 30 * 86400, "rule": "retention[0]"}


def test_inside_the_window_only_confirmed_deletions_go():
    planned = evaluate([rule(older=7)], tags("g/app", latest=0, a=30, b=30, c=30), NOW).deletions
    now_tags = tags("g/app", latest=0, a=30, b=0, c=30)                      # b pushed again since the plan
    now_tags[3] = TagFact("g/app", "c", "sha256:" + "f" * 64, NOW - 30 * DAY)  # c points elsewhere now
    again = evaluate([rule(older=7)], now_tags, NOW).deletions
    assert [d.tag for d in confirmed(planned, again)] == ["a"]


def test_left_with_tags_keeps_a_digest_another_tag_shares():
    shared = "sha256:" + "5" * 64
    facts = [TagFact("g/app", "old", shared, NOW - 30 * DAY), TagFact("g/app", "stable", shared, NOW),
             TagFact("g/app", "x", "sha256:" + "6" * 64, NOW - 30 * DAY)]
    gone = [Deletion("g/app", "old", shared, 30 * DAY, "retention[0]"),
            Deletion("g/app", "x", "sha256:" + "6" * 64, 30 * DAY, "retention[0]")]
    assert left_with_tags(facts, gone) == {"g/app": {"5" * 64}}
