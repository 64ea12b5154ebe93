"""What each kind of test host looks like inside, and the registry config the harness writes."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # sshd's default for root
# A BusyBox host (Alpine, appliances): these tools are BusyBox applets, first on PATH (in the
# host's /usr/local/sbin), and /bin/sh is BusyBox's ash. curl, ssh and the registry stay.
BUSYBOX_APPLETS = (
    "awk", "base64", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df", "dirname", "du",
    "echo", "env", "expr", "false", "find", "grep", "head", "id", "kill", "ln", "ls", "md5sum", "mkdir",
    "mktemp", "mv", "od", "printf", "readlink", "realpath", "rm", "rmdir", "sed", "seq", "sha256sum", "sleep",
    "sort", "stat", "tail", "tee", "test", "timeout", "touch", "tr", "true", "uname", "uniq", "wc", "xargs",
)


@dataclass(frozen=True)
class Kind:
    name: str
    config_path: str        # registry config inside the host
    storage_path: str       # filesystem driver root inside the host
    binary: str             # registry binary inside the host
    service_tool: str       # stand-in on PATH: systemctl or gitlab-ctl
    service: str            # unit / service name the stand-in handles
    pidfile: str            # inside the host (tmpfs /run)

    @property
    def config_dir(self) -> str:
        return self.config_path.rsplit("/", 1)[0]

    def start_cmd(self) -> str:
        return f"/usr/local/sbin/{self.service_tool} start {self.service}"


KINDS = {
    "distribution": Kind(
        name="distribution",
        config_path="/etc/docker/registry/config.yml",
        storage_path="/var/lib/docker-registry",
        binary="/usr/bin/docker-registry",
        service_tool="systemctl",
        service="docker-registry",
        pidfile="/run/docker-registry.pid",
    ),
    "omnibus": Kind(
        name="omnibus",
        config_path="/var/opt/gitlab/registry/config.yml",
        storage_path="/var/opt/gitlab/gitlab-rails/shared/registry",
        binary="/opt/gitlab/embedded/bin/registry",
        service_tool="gitlab-ctl",
        service="registry",
        pidfile="/run/gitlab-registry.pid",
    ),
}


def registry_config(kind: Kind, *, readonly: bool = False, extra: str = "", blobdescriptor: str = "inmemory") -> str:
    """The registry config.yml text the harness writes (comments included on purpose)."""
    maintenance = (
        "  maintenance:\n"
        "    readonly:\n"
        "      enabled: true\n"
    ) if readonly else ""
    text = (
        f"# Registry configuration for a gcops test host ({kind.name}).\n"
        "# Written by tests/harness; comments here must survive gcops' edits.\n"
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "  formatter: text\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {kind.storage_path}  # the storage gcops measures\n"
        "  delete:\n"
        "    enabled: true\n"
        "  cache:\n"
        f"    blobdescriptor: {blobdescriptor}\n"
        f"{maintenance}"
        "http:\n"
        "  addr: 127.0.0.1:5000\n"
        "health:\n"
        "  storagedriver:\n"
        "    enabled: false\n"
    )
    if extra:
        text += extra if extra.endswith("\n") else extra + "\n"
    return text


def setup_script(kind: Kind, d: Path, storage_dir: Path, sshd_config: Path, start_registry: bool,
                 busybox: str | None = None) -> str:
    """The shell script a host's first process runs inside its fresh mount namespace (d: per-host dir).
    With `busybox` (the binary's path), /bin/sh (dash, which it points to) becomes BusyBox sh."""
    q = shlex.quote
    lines = [
        "set -eu",
        "mount -t tmpfs -o mode=0755,size=64m gcops-run /run",
        "mkdir -m 0755 /run/sshd",
        f"cp {q(str(d / 'harness.env'))} /run/gcops-harness.env",
        f"mount --bind {q(str(d / 'bin'))} /usr/local/sbin",
        f"mount --bind {q(str(d / 'containers'))} /var/lib/containers",
        # a stock root .bashrc, as on a server: this machine's own sources pyenv (+0.15 s per SSH command)
        f"if [ -f /root/.bashrc ]; then mount --bind {q(str(d / 'root.bashrc'))} /root/.bashrc; fi",
    ]
    if busybox:
        lines.append(f"mount --bind {q(busybox)} \"$(readlink -f /bin/sh)\"")
    if kind.name == "omnibus":
        lines += [
            "mount -t tmpfs -o mode=0755 gcops-opt /opt",
            "mount -t tmpfs -o mode=0755 gcops-var-opt /var/opt",
            "mkdir -p /opt/gitlab/embedded/bin /opt/gitlab/bin /var/opt/gitlab/registry "
            "/var/opt/gitlab/gitlab-rails/shared/registry",
            ": > /opt/gitlab/embedded/bin/registry",
            "mount --bind /usr/bin/docker-registry /opt/gitlab/embedded/bin/registry",
            f"cp {q(str(d / 'bin' / 'gitlab-ctl'))} /opt/gitlab/bin/gitlab-ctl",
            "mount -t tmpfs -o mode=0755 gcops-hide /etc/docker/registry",  # no distribution config here
        ]
    lines += [
        f"mount --bind {q(str(d / 'config'))} {q(kind.config_dir)}",
        f"mount --bind {q(str(storage_dir))} {q(kind.storage_path)}",
        # anchor: keeps the namespaces enterable (nsenter -t) even while sshd is stopped
        f"sleep infinity </dev/null >/dev/null 2>&1 & echo $! > {q(str(d / 'anchor.pid'))}",
    ]
    if start_registry:
        lines.append(f"PATH={HOST_PATH} {kind.start_cmd()} || "
                     "echo 'gcops-harness: registry did not start' >&2")
    lines.append(f"exec /usr/sbin/sshd -D -e -f {q(str(sshd_config))}")
    return "\n".join(lines) + "\n"
