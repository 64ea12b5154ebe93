"""Which hops reach a host, from an OpenSSH client config and gcops' own keys."""
from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from gcops.transport.ssh_route import Defaults, RouteError, read_ssh_config, resolve_route

CONFIG = """\
Host bastion
    HostName 192.0.2.1
    User jumper
    Port 2222
    IdentityFile /keys/bastion

Host inner-bastion
    HostName 192.0.2.2
    ProxyJump bastion

Host prod
    HostName 198.51.100.7
    User admin
    Port 2200
    IdentityFile /keys/prod
    ProxyJump bastion

Host deep
    ProxyJump ops@inner-bastion:2022,last.example.com

Host loop-a
    ProxyJump loop-b
Host loop-b
    ProxyJump loop-a
"""
DEFAULTS = Defaults(user="root", port=22, identity_file=Path("/keys/gcops"))


def route(address: str, defaults: Defaults = DEFAULTS):
    return resolve_route(address, paramiko.SSHConfig.from_text(CONFIG), defaults)


def test_alias_gets_hostname_user_port_key_and_jump_host_with_its_own_settings():
    jump, target = route("prod")
    assert (target.hostname, target.user, target.port) == ("198.51.100.7", "admin", 2200)
    assert target.identity_files == (Path("/keys/prod"), Path("/keys/gcops"))
    assert (jump.alias, jump.hostname, jump.user, jump.port) == ("bastion", "192.0.2.1", "jumper", 2222)
    assert jump.identity_files[0] == Path("/keys/bastion")


def test_gcops_keys_win_only_where_the_user_set_them():
    explicit = Defaults(user="gcops", port=22, identity_file=Path("/keys/gcops"), explicit=frozenset({"user"}))
    *_, target = route("prod", explicit)
    assert (target.user, target.port) == ("gcops", 2200)
    explicit = Defaults(user="root", port=22, identity_file=Path("/keys/gcops"),
                        explicit=frozenset({"port", "identity_file"}))
    *_, target = route("prod", explicit)
    assert (target.user, target.port, target.identity_files) == ("admin", 22, (Path("/keys/gcops"),))


def test_unknown_host_is_direct_with_gcops_defaults():
    [target] = route("reg.example.com")
    assert (target.hostname, target.user, target.port) == ("reg.example.com", "root", 22)


def test_chained_jumps_in_order_with_spec_user_and_port():
    hops = route("deep")
    assert [(h.hostname, h.user, h.port) for h in hops] == [
        ("192.0.2.1", "jumper", 2222),           # inner-bastion's own ProxyJump
        ("192.0.2.2", "ops", 2022),              # user and port from the ProxyJump spec
        ("last.example.com", "root", 22),
        ("deep", "root", 22),
    ]


def test_proxyjump_loop_is_an_error_not_a_hang():
    with pytest.raises(RouteError, match="loop"):
        route("loop-a")


def test_missing_default_file_is_no_config(tmp_path):
    [target] = resolve_route("prod", read_ssh_config(tmp_path / "absent"), DEFAULTS)
    assert target.hostname == "prod"


def _config(tmp_path, ssh: str, instance_extra: str = "") -> Path:
    path = tmp_path / "gcops.toml"
    path.write_text(f'[ssh]\n{ssh}\n[[instance]]\nname = "prod"\nhost = "registry-prod"\nplaybook = "distribution"\n'
                    f"{instance_extra}")
    return path


def test_config_records_which_ssh_keys_the_user_set(tmp_path, monkeypatch):
    from gcops.config import load_config

    monkeypatch.setenv("HOME", str(tmp_path))
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host registry-prod\n    User admin\n")
    [inst] = load_config(_config(tmp_path, f'config_file = "{ssh_config}"\nport = 2222', 'user = "ops"\n')).instances
    assert inst.ssh_config_file == ssh_config and inst.ssh_explicit == frozenset({"port", "user"})
    [inst] = load_config(_config(tmp_path, "")).instances   # default ~/.ssh/config absent: no config, no error
    assert inst.ssh_config_file is None and inst.ssh_explicit == frozenset()


def test_a_set_ssh_config_file_that_is_missing_is_a_config_error(tmp_path):
    from gcops.config import ConfigError, load_config

    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, f'config_file = "{tmp_path / "nope"}"'))
    [line] = info.value.problems
    assert "at 'ssh.config_file'" in line and "cannot read ssh config file" in line
