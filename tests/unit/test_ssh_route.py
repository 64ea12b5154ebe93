"""Which hops reach a host, from an OpenSSH client config and gcops' own keys."""
from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from gcops.ssh_route import Defaults, RouteError, read_ssh_config, resolve_route

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
