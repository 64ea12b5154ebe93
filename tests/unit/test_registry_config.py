"""The one edit gcops makes to config.yml: minimal, comment-preserving, verified."""
import difflib

import pytest

from gcops.registry.config_file import RegistryConfigError, parse_registry_config, with_read_only

DEBIAN = b"""version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
"""

OMNIBUS = b"""# This file is managed by gitlab-ctl. Manual changes will be
# erased! To change the contents below, edit /etc/gitlab/gitlab.rb
# and run `sudo gitlab-ctl reconfigure`.

version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
    environment: production
storage: {"filesystem":{"rootdirectory":"/var/opt/gitlab/gitlab-rails/shared/registry"},"cache":{"blobdescriptor":"inmemory"},"delete":{"enabled":true}}
http:
  addr: 127.0.0.1:5000
  secret: "s3cr3t"
auth:
  token:
    realm: https://gitlab.example.com/jwt/auth
"""


def changed_lines(old: bytes, new: bytes):
    diff = difflib.ndiff(old.decode().splitlines(), new.decode().splitlines())
    return [line for line in diff if line[:1] in "+-"]


def test_block_style_gets_only_inserted_lines():
    new = with_read_only(DEBIAN)
    changes = changed_lines(DEBIAN, new)
    assert all(line.startswith("+") for line in changes)
    assert [line[2:].strip() for line in changes] == ["maintenance:", "readonly:", "enabled: true"]
    assert parse_registry_config(new.decode()).read_only


def test_existing_flag_changes_one_token_and_keeps_comment():
    src = b"storage:\n    filesystem:\n        rootdirectory: /x\n    maintenance:\n        readonly:\n            enabled: false  # off\n"
    new = with_read_only(src)
    assert changed_lines(src, new) == ["-             enabled: false  # off", "+             enabled: true  # off"]


def test_flow_style_falls_back_to_round_trip_keeping_comments_and_quotes():
    new = with_read_only(OMNIBUS)
    text = new.decode()
    assert text.startswith("# This file is managed by gitlab-ctl.")
    assert 'secret: "s3cr3t"' in text
    info = parse_registry_config(text)
    assert info.read_only and info.storage_root == "/var/opt/gitlab/gitlab-rails/shared/registry"
    assert len(changed_lines(OMNIBUS, new)) == 2  # the storage line, old and new


def test_no_trailing_newline_is_kept():
    src = b"storage:\n  filesystem:\n    rootdirectory: /x"
    assert not with_read_only(src).endswith(b"\n")


@pytest.mark.parametrize("src", [b"storage: 3\n", b"- a\n", b"storage:\n  maintenance: [1]\n  filesystem: {}\n",
                                 b"storage: {\n", b"\xff\xfe"])
def test_unsafe_or_broken_configs_are_refused(src):
    with pytest.raises(RegistryConfigError):
        with_read_only(src)


@pytest.mark.parametrize("value,expected", [("true", "true"), ("prefer", "prefer"), ("false", "false")])
def test_metadata_database_detected(value, expected):
    info = parse_registry_config(f"database:\n  enabled: {value}\nstorage:\n  filesystem: {{}}\n")
    assert info.database == expected
    assert info.uses_metadata_database == (expected in ("true", "prefer"))


def test_storage_root_defaults_and_driver():
    assert parse_registry_config("storage:\n  filesystem: {}\n").storage_root == "/var/lib/registry"
    s3 = parse_registry_config("storage:\n  s3: {bucket: b}\n  delete: {enabled: true}\n")
    assert s3.storage_driver == "s3" and s3.storage_root is None
