"""The command line surface: global options anywhere, help everywhere, report edge cases, completion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gcops.cli import main_group
from gcops.cli_globals import hoist_global_options

REPO = Path(__file__).resolve().parents[2]


def gcops(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GCOPS_")}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "gcops", *args], capture_output=True, text=True, timeout=60,
                          cwd=cwd or REPO, env=full_env, stdin=subprocess.DEVNULL)


def _walk(command: click.Command, path: str):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_option_and_command_has_help():
    missing = []
    for path, command in _walk(main_group, "gcops"):
        if not (command.help or command.short_help):
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.help:
                missing.append(f"{path} {'/'.join(param.opts)}")
    assert missing == []


def test_command_list_shows_whole_descriptions():
    out = gcops("--help").stdout
    for path, command in _walk(main_group, "gcops"):
        if path.count(" ") == 1:
            first_line = command.help.splitlines()[0].rstrip(".")
            assert " ".join(first_line.split()) in " ".join(out.split()), path


@pytest.mark.parametrize("args, expected", [
    (["run", "-v", "--config", "x.toml", "reg"], ["-v", "--config", "x.toml", "run", "reg"]),
    (["--config", "a.toml", "report", "-q", "--since", "7d"], ["--config", "a.toml", "-q", "report", "--since", "7d"]),
    (["config", "validate", "--config=x.toml"], ["--config=x.toml", "config", "validate"]),
    (["schedule", "install", "-vv", "--at", "03:00"], ["-vv", "schedule", "install", "--at", "03:00"]),
    (["run", "--", "-v"], ["run", "--", "-v"]),
    (["--log-format", "json", "check", "reg"], ["--log-format", "json", "check", "reg"]),
])
def test_global_options_move_before_the_command(args, expected):
    assert hoist_global_options(args, {"--config", "--log-format"}) == expected


CONFIG_ONLY_GCOPS = """\
[gcops]
state_dir = "{state}"

[[instance]]
name = "prod"
host = "reg.example.com"
playbook = "only-on-the-run-machine"
identity_file = "/nonexistent/key"
"""


def test_report_needs_only_gcops_and_says_no_runs(tmp_path):
    config = tmp_path / "gcops.toml"
    config.write_text(CONFIG_ONLY_GCOPS.format(state=tmp_path / "state"))
    p = gcops("report", "--config", str(config), "-q")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("no runs recorded") and str(tmp_path / "state") in p.stdout
    assert len(p.stdout.strip().splitlines()) == 1
    # while the run commands still refuse that config as a whole
    bad = gcops("config", "validate", "--config", str(config))
    assert bad.returncode == 2 and "only-on-the-run-machine" in bad.stderr


def test_report_into_a_missing_folder_fails_and_creates_nothing(tmp_path):
    config = tmp_path / "gcops.toml"
    config.write_text(CONFIG_ONLY_GCOPS.format(state=tmp_path / "state"))
    target = tmp_path / "no" / "such" / "report.html"
    p = gcops("--config", str(config), "report", "--format", "html", "-o", str(target))
    assert p.returncode == 2 and str(tmp_path / "no" / "such") in p.stderr
    assert not (tmp_path / "no").exists()


def test_config_validate_with_config_after_the_command(tmp_path):
    config = tmp_path / "gcops.toml"
    config.write_text('[[instance]]\nname = "prod"\nhost = "local"\nplaybook = "distribution"\n')
    p = gcops("config", "validate", "--config", str(config))
    assert p.returncode == 0, p.stderr
    assert "ok (1 instance(s): prod)" in p.stdout


def test_missing_config_names_every_place_and_the_sample(tmp_path):
    p = gcops("report", cwd=tmp_path)
    assert p.returncode == 2
    [line] = p.stderr.strip().splitlines()
    for needle in ("--config", "$GCOPS_CONFIG", "./gcops.toml", "/etc/gcops/config.toml", "config.sample.toml"):
        assert needle in line
    p = gcops("check", "--config", str(tmp_path / "nope.toml"))
    assert p.returncode == 2 and "nope.toml: no such file" in p.stderr


def test_bash_completion_script():
    p = gcops(env={"_GCOPS_COMPLETE": "bash_source"})
    assert p.returncode == 0
    assert "complete -o nosort -F _gcops_completion gcops" in p.stdout
    words = gcops(env={"_GCOPS_COMPLETE": "bash_complete", "COMP_WORDS": "gcops re", "COMP_CWORD": "1"}).stdout
    assert "plain,recover" in words and "plain,report" in words


@pytest.fixture
def restore_logging():
    """cli.main() points structlog at the captured stderr; later tests must not log into a closed file."""
    import structlog

    yield
    structlog.reset_defaults()


def test_internal_error_is_one_line_and_traceback_only_with_v(tmp_path, monkeypatch, capsys, restore_logging):
    import gcops.cli as cli

    config = tmp_path / "gcops.toml"
    config.write_text(CONFIG_ONLY_GCOPS.format(state=tmp_path / "state"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("gcops.actions.report.report", broken)
    for extra, traceback_shown in (([], False), (["-v"], True)):
        monkeypatch.setattr(sys, "argv", ["gcops", "report", "--config", str(config), *extra])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 1
        assert "internal error: RuntimeError: boom" in err
        assert ("Traceback (most recent call last)" in err) is traceback_shown
