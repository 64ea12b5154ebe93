"""SSH as admins run it: an OpenSSH client config with a Host alias, User and ProxyJump through a
bastion, a non-root sudo user on the registry host, and the bastion's host key checked too.

The bastion is a second test host whose sshd forwards TCP; a veth link joins its namespace to the
target's, and this machine's route to the target is made unreachable, so the only way in is the jump.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.harness import images
from tests.harness.gcops_cli import json_doc, run_gcops, toml_str
from tests.harness.hosts import combine_known_hosts
from tests.integration.conftest import all_pull, make_garbage

USER = "gcadmin"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def link_namespaces(bastion, target) -> None:
    """A veth pair between the two hosts' namespaces, with a /32 route each way over it."""
    a, b = f"gcj{bastion.n}a", f"gcj{bastion.n}b"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    _ip("link", "set", a, "netns", bastion.netns)
    _ip("link", "set", b, "netns", target.netns)
    for ns, dev, peer in ((bastion.netns, a, target.address), (target.netns, b, bastion.address)):
        _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", ns, "route", "add", f"{peer}/32", "dev", dev)


def add_sudo_user(host) -> None:
    """A non-root login with passwordless sudo, inside the host's own mount namespace only."""
    passwd, group, shadow = host.dir / "passwd", host.dir / "group", host.dir / "shadow"
    sudoers = host.dir / "sudoers.d"
    passwd.write_text(Path("/etc/passwd").read_text() + f"{USER}:x:1500:1500::/tmp:/bin/sh\n")
    group.write_text(Path("/etc/group").read_text() + f"{USER}:x:1500:\n")
    shadow.write_text(Path("/etc/shadow").read_text() + f"{USER}:*:20000:0:99999:7:::\n")  # no password, not locked
    os.chmod(shadow, 0o640)
    sudoers.mkdir()
    (sudoers / "gcops").write_text(f"{USER} ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(sudoers / "gcops", 0o440)
    host.sh(f"mount --bind {passwd} /etc/passwd && mount --bind {group} /etc/group && "
            f"mount --bind {shadow} /etc/shadow && "
            f"mkdir -p /etc/sudoers.d && mount --bind {sudoers} /etc/sudoers.d && "
            # the harness' authorized_keys sits under pytest's 0700 tmp folder: a copy the user can read
            f"install -m 0644 {host.dir / 'ssh' / 'authorized_keys'} /run/{USER}.keys")
    with open(host.sshd_config, "a") as config:
        config.write(f"Match User {USER}\n    AuthorizedKeysFile /run/{USER}.keys\n")
    host.stop_sshd()
    host.start_sshd()


def accepted_logins(host) -> list[str]:
    """sshd's 'Accepted publickey for USER from ADDRESS' lines (sshd logs to the host's setup.log)."""
    return [line for line in host.setup_log.read_text(errors="replace").splitlines() if "Accepted publickey" in line]


def test_proxyjump_alias_and_sudo_user_reclaim_and_restore_and_bastion_key_is_checked(host_factory, tmp_path,
                                                                                       client_key):
    bastion = host_factory("bastion", start_registry=False)
    target = host_factory("target")
    link_namespaces(bastion, target)
    add_sudo_user(target)
    assert target.sh(f"setpriv --reuid=1500 --regid=1500 --clear-groups sudo -n id -u").stdout.strip() == b"0"
    garbage = make_garbage(target, tmp_path)
    original = target.config_file.read_bytes()
    original_stat = target.sh(f"stat -c '%u %g %a' {target.config_path}").stdout

    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"""\
Host bastion
    HostName {bastion.address}
    User root
    IdentityFile {client_key}

Host registry-prod
    HostName {target.address}
    User {USER}
    ProxyJump bastion
    IdentityFile {client_key}
""")
    known_hosts = tmp_path / "known_hosts"
    # the bastion's key as a different (attacker's) host would present it; the target's key is right
    bastion.write_wrong_known_hosts(known_hosts)
    known_hosts.write_text(known_hosts.read_text() + target.known_hosts.read_text())
    config = tmp_path / "gcops.toml"
    config.write_text(f"""\
[gcops]
state_dir = {toml_str(tmp_path / "state")}
max_window = "5m"

[ssh]
known_hosts = {toml_str(known_hosts)}
config_file = {toml_str(ssh_config)}
sudo = true
host_key_policy = "strict"

[[instance]]
name = "prod"
host = "registry-prod"
playbook = "distribution"
""")
    subprocess.run(["ip", "route", "add", "unreachable", f"{target.address}/32"], check=True, capture_output=True)
    try:
        # 1. a bastion whose key differs from known_hosts is refused; the target is never reached
        refused = run_gcops("--config", str(config), "run", "--json")
        doc = json_doc(refused)
        assert refused.returncode == 1, refused.stderr
        [inst] = doc["instances"]
        assert inst["status"] in ("skipped", "failed") and inst["reclaimed_bytes"] is None
        assert "CHANGED" in inst["error"] and "jump host" in inst["error"] and bastion.address in inst["error"]
        assert not any(USER in line for line in accepted_logins(target))
        assert target.config_file.read_bytes() == original

        # 2. the admin's next action: put the bastion's real key in known_hosts, run again
        combine_known_hosts([bastion, target], known_hosts)
        du_before = images.storage_du(target)
        seen = len(accepted_logins(target))
        ok = run_gcops("run", "prod", "--json", "-v", "--config", str(config))  # global options after the command
        doc = json_doc(ok)
        assert ok.returncode == 0, ok.stderr
        [inst] = doc["instances"]
        assert inst["status"] == "ok", inst["error"]
        assert inst["reclaimed_bytes"] > 0 and inst["storage_bytes_before"] == du_before
        assert images.storage_du(target) == inst["storage_bytes_after"]
        assert all_pull(target, garbage.kept)
        assert not any(images.pulls(target, img.repo, img.tag) for img in garbage.deleted)
        # restored exactly, as root would: bytes, owner, mode
        assert target.config_file.read_bytes() == original
        assert target.sh(f"stat -c '%u %g %a' {target.config_path}").stdout == original_stat
        # every connection went through the bastion, as the ssh config's User
        logins = accepted_logins(target)[seen:]
        assert logins and all(f"for {USER} from {bastion.address} " in line for line in logins), logins
        assert any(f"for root from {bastion.root_address} " in line for line in accepted_logins(bastion))
        assert "ssh_connect" in ok.stderr  # -v shows the hops
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", f"{target.address}/32"], capture_output=True)
