"""Playbooks: built-ins load, search order, validation, and shell-safe rendering."""

import subprocess
from pathlib import Path

import pytest

from gcops.playbooks import (
    REQUIRED_COMMANDS,
    PlaybookError,
    builtin_playbook_dir,
    find_playbook,
    load_playbook,
    render,
)

VALID = """
name = "custom"
summary = "a custom deployment"
[vars]
config = "/etc/registry.yml"
[commands]
restart = "svc restart"
stop = "svc stop"
start = "svc start"
gc = "registry garbage-collect {config}"
"""


def write_playbook(folder: Path, name: str, text: str = VALID) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- built-in playbooks -------------------------------------------------------


def test_builtin_dir_is_the_repository_playbooks_folder():
    assert builtin_playbook_dir() == (Path(__file__).resolve().parents[2] / "playbooks").resolve()


@pytest.mark.parametrize("name", ["distribution", "omnibus"])
def test_builtin_playbooks_load_with_every_required_command(name):
    playbook = load_playbook(find_playbook(name, []))
    assert playbook.name == name
    assert playbook.summary
    assert set(REQUIRED_COMMANDS) <= set(playbook.commands)
    for template in playbook.commands.values():
        render(template, playbook.vars)  # every template renders with the defaults


def test_distribution_playbook_targets_the_debian_package():
    playbook = load_playbook(find_playbook("distribution", []))
    assert playbook.vars == {
        "config": "/etc/docker/registry/config.yml",
        "registry": "/usr/bin/docker-registry",
        "registry_url": "http://127.0.0.1:5000",
        "registry_ca_file": "",
        "storage_root": "",
        "service": "docker-registry",
    }
    assert render(playbook.commands["restart"], playbook.vars) == "systemctl restart docker-registry"
    assert render(playbook.commands["status"], playbook.vars) == "systemctl is-active docker-registry"
    assert (
        render(playbook.commands["gc"], playbook.vars)
        == "/usr/bin/docker-registry garbage-collect /etc/docker/registry/config.yml"
    )


def test_omnibus_playbook_targets_gitlab_ctl():
    playbook = load_playbook(find_playbook("omnibus", []))
    assert playbook.vars["config"] == "/var/opt/gitlab/registry/config.yml"
    assert playbook.vars["registry"] == "/opt/gitlab/embedded/bin/registry"
    assert playbook.commands["stop"] == "gitlab-ctl stop registry"
    assert playbook.commands["start"] == "gitlab-ctl start registry"
    assert (
        render(playbook.commands["gc"], playbook.vars)
        == "/opt/gitlab/embedded/bin/registry garbage-collect /var/opt/gitlab/registry/config.yml"
    )


# --- search order ---------------------------------------------------------------


def test_user_dir_is_searched_before_builtin(tmp_path):
    mine = write_playbook(tmp_path / "mine", "omnibus", VALID.replace('"custom"', '"omnibus"'))
    assert find_playbook("omnibus", [tmp_path / "mine"]) == mine
    assert load_playbook(mine).commands["restart"] == "svc restart"


def test_user_dirs_are_searched_in_order(tmp_path):
    write_playbook(tmp_path / "second", "custom")
    first = write_playbook(tmp_path / "first", "custom")
    assert find_playbook("custom", [tmp_path / "first", tmp_path / "second"]) == first


def test_builtin_is_found_when_user_dirs_lack_it(tmp_path):
    found = find_playbook("distribution", [tmp_path / "missing", tmp_path])
    assert found == builtin_playbook_dir() / "distribution.toml"


def test_unknown_or_path_like_names_are_not_found(tmp_path):
    write_playbook(tmp_path, "secret")
    assert find_playbook("nothing-here", [tmp_path]) is None
    assert find_playbook("../" + tmp_path.name + "/secret", [tmp_path / "sub"]) is None
    assert find_playbook(str(tmp_path / "secret"), []) is None


# --- validation -------------------------------------------------------------------


def test_valid_custom_playbook_loads(tmp_path):
    playbook = load_playbook(write_playbook(tmp_path, "custom"))
    assert playbook.name == "custom"
    assert playbook.vars == {"config": "/etc/registry.yml"}
    assert playbook.path == tmp_path / "custom.toml"


def test_commands_beyond_the_required_ones_are_kept(tmp_path):
    playbook = load_playbook(write_playbook(tmp_path, "custom", VALID + 'status = "svc status"\n'))
    assert playbook.commands["status"] == "svc status"


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('colour = "red"\n' + VALID, "colour", "unknown key"),
        (VALID.replace('name = "custom"\n', ""), "name", "missing"),
        (VALID.replace('summary = "a custom deployment"', "summary = 3"), "summary", "got integer 3"),
        (VALID.replace('config = "/etc/registry.yml"', "config = true"), "vars.config", "got boolean true"),
        (VALID.replace('stop = "svc stop"\n', ""), "commands.stop", "required command is missing"),
        (VALID.replace('"svc start"', "['svc', 'start']"), "commands.start", "expected a string"),
        (VALID.replace("{config}", "{confg}"), "commands.gc", "undefined var 'confg'"),
        (VALID.replace("{config}", "{config"), "commands.gc", "unclosed '{'"),
        (VALID.replace('"svc stop"', '"awk }"'), "commands.stop", "single '}'"),
        (VALID.replace("{config}", "{con fig}"), "commands.gc", "not a var reference"),
    ],
    ids=lambda case: case if isinstance(case, str) and "\n" not in case else "",
)
def test_each_playbook_problem_names_file_and_key(tmp_path, text, key, fragment):
    path = write_playbook(tmp_path, "custom", text)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: at '{key}': ")
    assert fragment in problems[0]


def test_every_playbook_problem_is_reported_at_once(tmp_path):
    text = """
name = "broken"
colour = 1
[vars]
port = 5000
[commands]
restart = "x {nope}"
"""
    problems = problems_of(write_playbook(tmp_path, "broken", text))
    keys = [line.split("'")[1] for line in problems]
    assert keys == [
        "colour", "summary", "vars.port", "commands.stop", "commands.start", "commands.gc", "commands.restart",
    ]
    assert all(line.startswith(str(tmp_path / "broken.toml")) for line in problems)


def test_malformed_or_unreadable_playbook_is_one_line(tmp_path):
    path = write_playbook(tmp_path, "bad", 'name = "x\n')
    [line] = problems_of(path)
    assert line.startswith(f"{path}: invalid TOML: ") and "line 1" in line
    [line] = problems_of(tmp_path / "absent.toml")
    assert "cannot read playbook" in line and "absent.toml" in line


# --- rendering -------------------------------------------------------------------


def test_render_quotes_each_var_and_keeps_literal_braces():
    rendered = render("find {dir} -name '{{}}' {{x}} -- {v}", {"dir": "/var/lib/reg", "v": "a b"})
    assert rendered == "find /var/lib/reg -name '{}' {x} -- 'a b'"


def test_render_does_not_rescan_substituted_values():
    assert render("echo {a}", {"a": "{b}", "b": "boom"}) == "echo '{b}'"


def test_render_quotes_empty_value():
    assert render("du {root}", {"root": ""}) == "du ''"


def test_render_unknown_var_is_named():
    with pytest.raises(PlaybookError) as caught:
        render("run {known} {missing}", {"known": "x"})
    [line] = caught.value.problems
    assert "unknown var 'missing'" in line and "known vars: known" in line


@pytest.mark.parametrize("template", ["echo {", "echo }", "echo {a b}", "echo {}"])
def test_render_malformed_template_raises(template):
    with pytest.raises(PlaybookError):
        render(template, {"a": "x"})


INJECTIONS = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "'; touch {marker}; '",
    '"; touch {marker}; "',
    "x' && touch {marker} && echo '",
    "line1\ntouch {marker}\n",
    "| touch {marker}",
    "> {marker}",
    "&& touch {marker} &",
    "${{IFS}}touch${{IFS}}{marker}",
    "{{other}}",
    "$HOME * ? [a] ~ !!",
    "back\\slash\\",
    "-n",
    "",
    "spaces  and\ttab",
    "ünïcödé ✓",
]


@pytest.mark.parametrize("pattern", INJECTIONS)
def test_rendered_value_reaches_the_shell_as_inert_data(tmp_path, pattern):
    marker = tmp_path / "executed"
    value = pattern.format(marker=marker)  # test data only; render() never uses str.format
    command = render("printf %s {v}", {"v": value, "other": "SUBSTITUTED"})
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    assert result.stdout == value.encode()
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_several_vars_arrive_as_separate_arguments(tmp_path):
    command = render("printf '[%s]' {a} {b} {a}", {"a": "x y", "b": "'\"$(id)\""})
    result = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, check=True)
    assert result.stdout == b"[x y]['\"$(id)\"][x y]"
