"""S3 storage: settings from the registry config and [instance.s3], checks, key-space helpers (pure parts)."""
from __future__ import annotations

import pytest

from gcops.maintenance import preflight
from gcops.config import ConfigError, load_config
from gcops.config.model import S3Overrides
from gcops.storage import s3
from gcops.registry.config_file import parse_registry_config
from gcops.storage.s3_listing import _common_prefix, _groups, _is_blob_data

CONFIG = b"""version: 0.1
storage:
  s3:
    accesskey: AKIAEXAMPLE
    secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    region: eu-west-1
    regionendpoint: minio.internal:9000
    bucket: registry
    rootdirectory: /srv//registry/
    secure: false
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
"""
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_settings_come_from_the_registry_config():
    settings = s3.settings_from(s3.s3_parameters(CONFIG), None)
    assert (settings.bucket, settings.region, settings.endpoint_url, settings.rootdirectory, settings.prefix) == (
        "registry", "eu-west-1", "http://minio.internal:9000", "srv/registry", "srv/registry/")
    assert settings.path_style and settings.access_key == "AKIAEXAMPLE"
    assert settings.credential_source == "registry config keys"


def test_instance_s3_overrides_win_and_a_profile_replaces_the_config_keys():
    settings = s3.settings_from(s3.s3_parameters(CONFIG), S3Overrides(
        endpoint_url="https://s3.example.com", bucket="other", rootdirectory="", profile="gc", concurrency=4))
    assert (settings.endpoint_url, settings.bucket, settings.prefix, settings.concurrency) == (
        "https://s3.example.com", "other", "", 4)
    assert settings.access_key is None and settings.secret_key is None
    assert settings.credential_source == "profile gc"


def test_secure_endpoint_without_scheme_is_https_and_no_endpoint_is_aws():
    params = {"bucket": "b", "regionendpoint": "s3.local", "region": "us-east-1"}
    assert s3.settings_from(params, None).endpoint_url == "https://s3.local"
    aws = s3.settings_from({"bucket": "b", "region": "us-east-1"}, None)
    assert aws.endpoint_url is None and not aws.path_style and aws.credential_source == "AWS credential chain"


def test_missing_bucket_is_one_clear_line():
    with pytest.raises(s3.S3ConfigError, match="storage.s3.bucket is not set"):
        s3.settings_from({"region": "us-east-1"}, None)


def test_the_secret_never_shows_in_repr_or_messages():
    settings = s3.settings_from(s3.s3_parameters(CONFIG), None)
    facts = s3.BucketFacts(settings=settings, credentials="registry config keys refused: 403")
    shown = repr(settings) + repr(facts) + settings.where + str(s3.evaluate_bucket(facts))
    assert SECRET not in shown and "AKIAEXAMPLE" in repr(settings)


def test_a_config_holding_a_secret_is_not_journal_safe():
    assert not s3.journal_safe(CONFIG)
    assert s3.journal_safe(b"storage:\n  filesystem:\n    rootdirectory: /var/lib/registry\n")
    # a guard that cannot read the config refuses: it may hold a secret after the unreadable part
    assert not s3.journal_safe(b"storage:\n  s3: [unclosed\n  secretkey: hidden\n")


def _facts(**kw) -> s3.BucketFacts:
    settings = s3.settings_from(s3.s3_parameters(CONFIG), None)
    return s3.BucketFacts(settings=settings, **{"root_present": True, "repositories": True,
                                                "database_in_use": False, **kw})


@pytest.mark.parametrize("kw, name, words", [
    ({"reachable": "cannot connect to http://minio.internal:9000/registry"}, "bucket_reachable", "endpoint_url"),
    ({"credentials": "registry config keys refused: InvalidAccessKeyId: nope"}, "s3_credentials", "InvalidAccessKeyId"),
    ({"bucket": "bucket registry does not exist (NoSuchBucket: gone)"}, "bucket", "does not exist"),
    ({"database_in_use": True}, "storage_root", "database-in-use"),
    ({"root_present": False}, "storage_root", "rootdirectory"),
])
def test_each_bucket_problem_is_named(kw, name, words):
    checks = s3.evaluate_bucket(_facts(**kw))
    assert checks[-1][0] == name and checks[-1][1] is False and words in checks[-1][2]
    assert all(ok for _, ok, _ in checks[:-1])


def test_a_healthy_bucket_passes_every_check():
    checks = s3.evaluate_bucket(_facts())
    assert [c[0] for c in checks] == ["storage_s3", "bucket_reachable", "s3_credentials", "bucket", "storage_root"]
    assert all(ok for _, ok, _ in checks)


@pytest.mark.parametrize("driver", ["gcs", "azure", "swift", "oss"])
def test_other_drivers_are_refused_naming_the_driver(driver):
    text = f"storage:\n  {driver}:\n    bucket: x\n"
    facts = preflight.NodeFacts(address="h", config_bytes=text.encode(), registry=parse_registry_config(text))
    checks = preflight.evaluate(facts, {"config": "/etc/c.yml", "registry_url": "http://x", "registry": "r"})
    assert checks[-1].name == "storage_driver" and not checks[-1].ok and f"storage driver {driver}" in checks[-1].detail


def test_blob_data_keys_are_recognised():
    assert _is_blob_data("r/docker/registry/v2/blobs/sha256/ab/abcd/data", "r/")
    assert not _is_blob_data("r/docker/registry/v2/blobs/sha256/ab/cd/data", "r/")
    assert not _is_blob_data("r/docker/registry/v2/repositories/a/_layers/sha256/ab/link", "r/")
    assert not _is_blob_data("r/docker/registry/v2/blobs/sha256/ab/abcd/data/x", "r/")


def test_groups_are_contiguous_and_cover_every_dir():
    dirs = [f"p/{i:02x}/" for i in range(256)]
    groups = _groups(dirs, 16)
    assert len(groups) == 16 and groups[0] == ("p/00/", "p/0f/")
    assert _common_prefix(*groups[10]) == "p/a"       # a whole first-hex run is one plain prefix
    assert _groups(["a/"], 16) == [("a/", "a/")] and _groups([], 4) == []
    flat = [d for first, last in _groups(dirs[:37], 5) for d in dirs[:37] if first <= d <= last]
    assert flat == dirs[:37]


def _write(tmp_path, body: str):
    path = tmp_path / "gcops.toml"
    path.write_text('[[instance]]\nname = "r"\nhost = "h.example"\nplaybook = "distribution"\n' + body)
    return path


def test_instance_s3_table_is_typed(tmp_path):
    config = load_config(_write(tmp_path, '[instance.s3]\nendpoint_url = "http://127.0.0.1:9000"\n'
                                          'profile = "gc"\nconcurrency = 8\n'))
    assert config.instances[0].s3 == S3Overrides(endpoint_url="http://127.0.0.1:9000", profile="gc", concurrency=8)


def test_instance_s3_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, '[instance.s3]\nendpoint_url = "s3.example.com"\nsecretkey = "x"\n'
                                     'concurrency = 0\n'))
    text = str(err.value)
    assert "at 'instance[0].s3.endpoint_url'" in text and "at 'instance[0].s3.secretkey': unknown key" in text
    assert "at 'instance[0].s3.concurrency'" in text


def test_redact_hides_the_secret_in_config_text_and_diffs():
    diff = " storage:\n+  maintenance:\n   s3:\n     secretkey: " + SECRET + "\n-    SecretKey:  x y\n"
    out = s3.redact(diff)
    assert SECRET not in out and "secretkey: ***" in out and "SecretKey:  ***" in out and "maintenance" in out
