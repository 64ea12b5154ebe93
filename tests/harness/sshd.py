"""SSH keys, sshd_config and known_hosts files for test hosts."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)


def make_client_key(dir: Path) -> Path:
    """An ed25519 client key pair without passphrase; returns the private key path (pub is <path>.pub)."""
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    key = dir / "id_ed25519"
    if not key.exists():
        _keygen(key, "gcops-test-client")
    return key


def new_host_key(path: Path) -> str:
    """Create an ed25519 key at path; return its public part as 'ssh-ed25519 AAAA...'."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(f"{path}.pub")):
        p.unlink(missing_ok=True)
    _keygen(path, "gcops-test-host")
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def write_known_hosts(path: Path, entries: Iterable[tuple[str, str]]) -> Path:
    """entries: (address, 'ssh-ed25519 AAAA...'); port 22, so no [brackets]."""
    Path(path).write_text("".join(f"{addr} {key}\n" for addr, key in entries))
    return Path(path)


def combine_known_hosts(hosts, path: Path) -> Path:
    """One known_hosts file with the lines of every host's own known_hosts."""
    Path(path).write_text("".join(h.known_hosts.read_text() for h in hosts))
    return Path(path)


def sshd_config(address: str, ssh_dir: Path, tcp_forwarding: bool = True) -> str:
    return f"""\
# sshd for a gcops test host (tests/harness)
ListenAddress {address}
Port 22
HostKey {ssh_dir}/ssh_host_ed25519_key
PidFile {ssh_dir}/sshd.pid
AuthorizedKeysFile {ssh_dir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding {"yes" if tcp_forwarding else "no"}
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:200
MaxSessions 64
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
"""
