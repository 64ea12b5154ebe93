"""[[instance.retention]]: typed rules, and every mistake reported (exit 2) with its key before any host."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gcops.config import ConfigError, load_config
from gcops.config.schema import RETENTION

REPO = Path(__file__).resolve().parents[2]
INSTANCE = """
[[instance]]
name = "reg"
host = "127.0.0.1"
port = {port}
identity_file = ""
playbook = "distribution"
"""


def config_with(tmp_path: Path, rules: str, port: int = 22) -> Path:
    path = tmp_path / "gcops.toml"
    path.write_text(f'[gcops]\nstate_dir = "{tmp_path}/state"\n' + INSTANCE.format(port=port) + rules)
    return path


def test_a_rule_gets_its_defaults_and_types(tmp_path):
    config = load_config(config_with(tmp_path, '[[instance.retention]]\nname_regex = "dev-.*"\n'
                                               '[[instance.retention]]\nname_regex = ".*"\nkeep_n = 3\n'
                                               'older_than = "1w2d"\nage_from = "created"\nallow_empty = true\n'))
    first, second = config.instances[0].retention
    assert first.label == "retention[0]" and first.name_regex.pattern == "dev-.*"
    assert first.repositories.pattern == ".*" and first.name_regex_keep is None
    assert (first.keep_n, first.older_than, first.age_from, first.allow_empty) == (None, None, "pushed", False)
    assert (second.keep_n, second.older_than, second.age_from, second.allow_empty) == (3, 9 * 86400, "created", True)


def test_no_rules_no_retention(tmp_path):
    assert load_config(config_with(tmp_path, "")).instances[0].retention == ()


@pytest.mark.parametrize("line,key,says", [
    ('name_regex = "(("', "name_regex", "invalid regular expression"),
    ('name_regex_keep = "[a-"', "name_regex_keep", "invalid regular expression"),
    ('repositories = "*"', "repositories", "invalid regular expression"),
    ('older_than = "14"', "older_than", "invalid age"),
    ('older_than = "0d"', "older_than", "longer than zero"),
    ('keep_n = -1', "keep_n", "0 or more"),
    ('keep = 3', "keep", "did you mean 'keep_n'"),
    ('age_from = "built"', "age_from", "'pushed' or 'created'"),
    ('allow_empty = "yes"', "allow_empty", "boolean"),
])
def test_mistakes_name_the_key(tmp_path, line, key, says):
    path = config_with(tmp_path, f'[[instance.retention]]\nname_regex = ".*"\n[[instance.retention]]\n{line}\n'
                       + ('name_regex = ".*"\n' if not line.startswith("name_regex ") else ""))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: at 'instance[0].retention[1].{key}': ") and says in problem


def test_name_regex_is_required(tmp_path):
    path = config_with(tmp_path, '[[instance.retention]]\nkeep_n = 5\n')
    with pytest.raises(ConfigError, match=r"instance\[0\]\.retention\[0\]\.name_regex': required"):
        load_config(path)


def test_every_key_is_documented_in_the_sample():
    text = (REPO / "config.sample.toml").read_text()
    for key in RETENTION:
        assert f"\n{key} = " in text, key


def test_cli_exits_2_naming_the_key_before_contacting_any_host(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    path = config_with(tmp_path, '[[instance.retention]]\nname_regex = "(("\n', port=listener.getsockname()[1])
    for command in ("plan", "run"):
        proc = subprocess.run([sys.executable, "-m", "gcops", "--config", str(path), command],
                              capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 2, proc.stderr
        assert "instance[0].retention[0].name_regex" in proc.stderr and proc.stdout == ""
    with pytest.raises(socket.timeout):
        listener.accept()
    listener.close()


def test_the_readme_example_policy_is_valid(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Retention"):]
    example = section[section.index("```toml") + 7:section.index("```", section.index("```toml") + 7)]
    path = tmp_path / "gcops.toml"
    path.write_text(f'[gcops]\nstate_dir = "{tmp_path}/state"\n[ssh]\nidentity_file = ""\n' + example)
    rules = load_config(path).instances[0].retention
    assert [r.label for r in rules] == ["retention[0]", "retention[1]"]
    assert rules[0].name_regex_keep.fullmatch("v1.2.3") and not rules[0].name_regex_keep.fullmatch("v1.2")
