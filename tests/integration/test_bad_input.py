"""Bad input: one clear line naming the problem, exit 2, and no host contacted (issue 2)."""
from __future__ import annotations

import pytest

from tests.harness.gcops_cli import run_gcops

GOOD_INSTANCE = """
[[instance]]
name = "reg"
host = "127.0.0.1"
port = {port}
playbook = "distribution"
"""


def write(tmp_path, text, port, ssh_extra=""):
    path = tmp_path / "gcops.toml"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.touch()
    path.write_text(f'[gcops]\nstate_dir = "{tmp_path / "state"}"\n'
                    f'[ssh]\nknown_hosts = "{known_hosts}"\nconnect_timeout = "2s"\n{ssh_extra}\n'
                    + text.format(port=port))
    return path


BAD_CONFIGS = {
    "unknown key": (GOOD_INSTANCE + "colour = 1\n", "instance[0].colour"),
    "wrong type": (GOOD_INSTANCE.replace("{port}", '"{port}"'), "instance[0].port"),
    "duplicate names": (GOOD_INSTANCE + GOOD_INSTANCE, "duplicate"),
    "missing playbook": (GOOD_INSTANCE.replace('"distribution"', '"nonesuch"'), "instance[0].playbook"),
    "bad duration": ("[[instance]]\nname = \"reg\"\nhost = \"127.0.0.1\"\nport = {port}\nplaybook = \"distribution\"\n"
                     "max_window = \"forever\"\n", "instance[0].max_window"),
    "unreadable identity file": (GOOD_INSTANCE + 'identity_file = "/nonexistent/id_ed25519"\n',
                                 "instance[0].identity_file"),
    "malformed toml": (GOOD_INSTANCE + "name = = \n", "gcops.toml"),
    "var the playbook lacks": (GOOD_INSTANCE + "[instance.vars]\nregistri = \"/x\"\n", "instance[0].vars.registri"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_2_without_contacting_hosts(case, tmp_path, connection_counter):
    text, needle = BAD_CONFIGS[case]
    assert "{port}" in text
    config = write(tmp_path, text, connection_counter.port)
    for args in (["run"], ["check"], ["config", "validate"]):
        proc = run_gcops("--config", str(config), *args, timeout=60)
        assert proc.returncode == 2, (case, args, proc.stdout, proc.stderr)
        assert needle in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
    assert connection_counter.count == 0


def test_several_problems_reported_at_once(tmp_path, connection_counter):
    text = GOOD_INSTANCE.replace('"distribution"', '"nope"') + 'mode = "fast"\nmax_window = "x"\n'
    path = write(tmp_path, text, connection_counter.port)
    proc = run_gcops("--config", str(path), "run")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("gcops:")]
    assert len(lines) >= 3 and all(str(path) in line for line in lines), proc.stderr
    assert connection_counter.count == 0


@pytest.mark.parametrize("args,needle", [
    (["run", "nosuch"], "nosuch"),
    (["run", "--max-window", "soon"], "max-window"),
    (["run", "--parallel", "0"], "parallel"),
    (["run", "--mode", "fast"], "mode"),
    (["report", "--since", "yesterdayish"], "since"),
])
def test_bad_flags_exit_2(args, needle, tmp_path, connection_counter):
    config = write(tmp_path, GOOD_INSTANCE, connection_counter.port)
    proc = run_gcops("--config", str(config), *args)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert connection_counter.count == 0


def test_counter_sees_a_good_config_connect(tmp_path, connection_counter):
    """The control case: the same config without its mistake does contact the host."""
    config = write(tmp_path, GOOD_INSTANCE, connection_counter.port)
    proc = run_gcops("--config", str(config), "check", "--json")
    assert proc.returncode == 1
    assert connection_counter.count >= 1


def test_missing_config_file_is_one_line(tmp_path):
    proc = run_gcops("--config", str(tmp_path / "nope.toml"), "run")
    assert proc.returncode == 2 and "nope.toml" in proc.stderr and "Traceback" not in proc.stderr
