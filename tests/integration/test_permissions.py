"""A non-root SSH user without sudo: refused up front with the permission named, nothing changed."""
from __future__ import annotations

from tests.harness.gcops_cli import json_doc, run_gcops
from tests.integration.conftest import make_garbage, write_probe
from tests.integration.test_faults import config_for
from tests.integration.test_ssh_config import USER, add_sudo_user


def test_user_who_may_not_write_the_config_is_told_to_use_sudo(host_factory, tmp_path):
    h = host_factory("nosudo")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    add_sudo_user(h)
    original = h.config_file.read_bytes()
    config = config_for(tmp_path, h, extra=f'user = "{USER}"\nsudo = false')
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1, proc.stderr
    error = json_doc(proc)["instances"][0]["error"]
    assert "permission" in error and "sudo = true" in error, error
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert not (h.config_file.parent / ".gcops").exists()
    # the next action: with sudo it works
    proc = run_gcops("--config", str(config_for(tmp_path, h, state="s2", extra=f'user = "{USER}"\nsudo = true')),
                     "run", "--json")
    assert proc.returncode == 0, proc.stderr
