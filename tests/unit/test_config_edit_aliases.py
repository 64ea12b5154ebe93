"""The read-only edit with anchors, aliases, merge keys, tabs before comments and CRLF:
what the registry reads afterwards differs from before in the read-only flag only."""
import difflib

import pytest
from ruamel.yaml import YAML

from gcops.registry.config_file import RegistryConfigError, parse_registry_config, with_read_only
from gcops.registry.yaml_text import parse_text, plain

HEAD = "version: 0.1\nhttp:\n  addr: :5000\n"

CASES = {
    # the incident: readonly is an alias of the block uploadpurging anchors
    "readonly_aliases_uploadpurging": HEAD + """storage:
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance:
    uploadpurging: &off
      enabled: false
      age: 168h
    readonly: *off
""",
    # readonly is the anchored original; uploadpurging is the alias
    "uploadpurging_aliases_readonly": HEAD + """storage:
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance:
    readonly: &off
      enabled: false
    uploadpurging: *off   # same switches
""",
    "readonly_merges_a_base": HEAD + """x-defaults: &base
  enabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance:
    uploadpurging: *base
    readonly:
      <<: *base
""",
    "maintenance_is_an_alias": HEAD + """x-maintenance: &m
  uploadpurging:
    enabled: false
  readonly:
    enabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance: *m
other: *m
""",
    "maintenance_merges_a_base": HEAD + """x-maintenance: &m
  uploadpurging:
    enabled: false
  readonly:
    enabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  maintenance:
    <<: *m
""",
    "flag_is_a_scalar_alias": HEAD + """x-off: &no false
storage:
  filesystem:
    rootdirectory: /r
  maintenance:
    readonly:
      enabled: *no
""",
    "flag_is_an_anchored_scalar": HEAD + """storage:
  filesystem:
    rootdirectory: /r
  maintenance:
    readonly:
      enabled: &no false
    uploadpurging:
      enabled: *no
""",
    "flow_style_with_anchor": HEAD + """storage: {filesystem: {rootdirectory: /r}, maintenance: {uploadpurging: &u {enabled: false}, readonly: *u}}
""",
    "tabs_before_comments": HEAD + "storage:\t# the storage\n  filesystem:\n    rootdirectory: /r\t# root\n"
                                   "  maintenance:\n    readonly:\n      enabled: false\t\t# off\n\t# tab-indented comment line\n",
    "crlf": (HEAD + "storage:\n  filesystem:\n    rootdirectory: /r\n  delete:\n    enabled: true\n").replace("\n", "\r\n"),
    "crlf_with_alias": (HEAD + "storage:\n  filesystem:\n    rootdirectory: /r\n  maintenance:\n"
                        "    uploadpurging: &u\n      enabled: false\n    readonly: *u\n").replace("\n", "\r\n"),
}


# an anchored original on the flag's own path, or flow style: no surgical edit, a round trip
ROUND_TRIP = ("uploadpurging_aliases_readonly", "flow_style_with_anchor", "flag_is_an_anchored_scalar")


def registry_view(text: str) -> dict:
    """What the registry reads: every alias and merge resolved, nothing shared."""
    return plain(YAML(typ="safe").load(parse_text(text)))


def with_flag(tree: dict) -> dict:
    tree["storage"].setdefault("maintenance", {}).setdefault("readonly", {})
    tree["storage"]["maintenance"]["readonly"] = dict(tree["storage"]["maintenance"]["readonly"], enabled=True)
    return tree


@pytest.mark.parametrize("name", sorted(CASES))
def test_only_the_flag_changes(name):
    old = CASES[name]
    new = with_read_only(old.encode()).decode()
    assert registry_view(new) == with_flag(registry_view(old))
    assert parse_registry_config(new).read_only and not parse_registry_config(old).read_only
    maintenance = registry_view(new)["storage"]["maintenance"]
    if "uploadpurging" in maintenance:
        assert maintenance["uploadpurging"]["enabled"] is False          # the incident: it was flipped too
    if name in ROUND_TRIP:
        return
    for anchor in ("&off", "&base", "&m", "&u"):   # an anchored original keeps its own bytes
        if anchor in old:
            assert [ln for ln in old.splitlines() if anchor in ln] == [ln for ln in new.splitlines() if anchor in ln]


def changed(old: str, new: str) -> list[str]:
    return [ln for ln in difflib.ndiff(old.splitlines(True), new.splitlines(True)) if ln[:1] in "+-"]


def test_alias_is_replaced_at_its_spot_only():
    old = CASES["readonly_aliases_uploadpurging"]
    new = with_read_only(old.encode()).decode()
    assert changed(old, new) == ["-     readonly: *off\n", "+     readonly: {<<: *off, enabled: true}\n"]


def test_merge_gets_an_own_key():
    old = CASES["readonly_merges_a_base"]
    new = with_read_only(old.encode()).decode()
    assert changed(old, new) == ["+       enabled: true\n"]


def test_tabs_before_comments_are_accepted_and_kept():
    old = CASES["tabs_before_comments"]
    assert parse_registry_config(old).storage_root == "/r"
    new = with_read_only(old.encode()).decode()
    assert changed(old, new) == ["-       enabled: false\t\t# off\n", "+       enabled: true\t\t# off\n"]


@pytest.mark.parametrize("name", ["crlf", "crlf_with_alias"])
def test_crlf_stays_crlf(name):
    new = with_read_only(CASES[name].encode())
    assert new.count(b"\n") == new.count(b"\r\n") > 0


def test_a_quoted_tab_is_kept_when_the_file_needs_no_help():
    text = 'storage:\n  filesystem:\n    rootdirectory: "/r\t#x"\n'
    assert parse_registry_config(text).storage_root == "/r\t#x"


def test_recursive_alias_is_refused_not_looped():
    text = "a: &a [*a]\nstorage:\n  filesystem: {rootdirectory: /r}\n"
    try:
        new = with_read_only(text.encode())
    except RegistryConfigError:
        return
    assert parse_registry_config(new.decode()).read_only
