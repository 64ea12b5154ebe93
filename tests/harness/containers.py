"""Container test hosts: podman's Docker-compatible API, a `registry:2`-shaped image built here, and
registry containers started with testcontainers (nothing is pulled from any image registry).

The image holds the real Debian `docker-registry` binary (with the libc it links), a static BusyBox
(the shell `registry:2` has) and a config, laid out as `registry:2` is: /bin/registry,
/etc/docker/registry/config.yml, /var/lib/registry. It is made with `podman import` of a rootfs tar.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .netns import HarnessError

BUSYBOX_STATIC = Path("/opt/gcops-test/busybox-static/bin/busybox")
REGISTRY_BINARY = "/usr/bin/docker-registry"
IMAGE = "localhost/gcops-test-registry"
CONFIG = """version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
"""
APPLETS = ("sh", "cat", "test", "ls", "sleep", "echo", "rm", "mv", "cp", "mkdir", "ps", "kill", "env", "true", "cut",
           "false", "grep", "sed", "tr", "head", "tail", "wc", "date", "id", "chmod", "ln", "du", "df", "stat", "pkill",
           "pidof", "setsid", "nohup")
# TEST FIXTURE: the real registry binary started late (a GC long enough to push into, or to kill gcops in)
SLOW_REGISTRY = "#!/bin/sh\nsleep {delay}\nexec /bin/registry \"$@\"\n"
SLOW_DELAYS = (3, 120)


def missing_tools() -> str | None:
    """Why the container tests cannot run here, or None."""
    missing = [t for t in ("podman", "docker", "runc", "skopeo") if not shutil.which(t)]
    if not BUSYBOX_STATIC.is_file():
        missing.append(str(BUSYBOX_STATIC))
    if not shutil.which("docker-registry"):
        missing.append("docker-registry")
    return f"container tests need {', '.join(missing)} (sh scripts/install.sh)" if missing else None


def _unix_get(sock: str, path: str, timeout: float = 5) -> int:
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.settimeout(timeout)
    conn.sock.connect(sock)
    conn.request("GET", path)
    return conn.getresponse().status


class PodmanService:
    """`podman system service` on a socket of its own; `env` points docker clients and testcontainers at it."""

    def __init__(self, base: Path):
        self.socket = str(base / "podman.sock")
        self.log = open(base / "podman-service.log", "wb")
        self.proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while True:
            try:
                if _unix_get(self.socket, "/_ping") == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > end:
                raise HarnessError(f"podman system service did not answer on {self.socket} "
                                   f"(see {base / 'podman-service.log'})")
            time.sleep(0.05)
        self.env = {"DOCKER_HOST": f"unix://{self.socket}", "TESTCONTAINERS_RYUK_DISABLED": "true",
                    "TESTCONTAINERS_CONNECTION_MODE": "docker_host"}

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, mode: int = 0o644, link: str | None = None,
         directory: bool = False) -> None:
    info = tarfile.TarInfo(name.lstrip("/"))
    info.mtime = 0
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                libs.append(part)
                break
    return libs


def _import_image(work: Path, repo: str, files: dict[str, tuple[bytes, int]], dirs: tuple[str, ...],
                  changes: list[str]) -> str:
    """A BusyBox image with the registry binary's libraries and `files` ({path: (bytes, mode)}), made with
    `podman import` (built once per content; reused when podman already has it)."""
    busybox = BUSYBOX_STATIC.read_bytes()
    libs = {lib: Path(lib).read_bytes() for lib in _libraries(REGISTRY_BINARY)}
    h = hashlib.sha256(busybox + " ".join(APPLETS).encode() + " ".join(changes).encode())
    for path, (data, mode) in sorted({**files, **{k: (v, 0o755) for k, v in libs.items()}}.items()):
        h.update(path.encode() + b"\0" + data + str(mode).encode())
    name = f"{repo}:{h.hexdigest()[:16]}"
    if subprocess.run(["podman", "image", "exists", name]).returncode == 0:
        return name
    rootfs = work / f"rootfs-{h.hexdigest()[:16]}.tar"
    with tarfile.open(rootfs, "w") as tar:
        for d in ("bin", "etc", "var", "var/lib", "tmp", "lib", "lib64", "lib/x86_64-linux-gnu", "usr", "usr/bin",
                  "proc", "sys", "dev", "run", *dirs):
            _add(tar, d, directory=True)
        _add(tar, "bin/busybox", busybox, 0o755)
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", link="busybox")
        for lib, data in libs.items():
            _add(tar, lib, data, 0o755)
        for path, (data, mode) in files.items():
            _add(tar, path, data, mode)
        _add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    args = [a for change in changes for a in ("--change", change)]
    proc = subprocess.run(["podman", "import", *args, str(rootfs), name], capture_output=True, text=True)
    rootfs.unlink()
    if proc.returncode != 0:
        raise HarnessError(f"podman import failed: {proc.stderr}")
    return name


def build_registry_image(work: Path, *, config: str = CONFIG) -> str:
    """The `registry:2`-shaped image: /bin/registry, /etc/docker/registry/config.yml, /var/lib/registry."""
    files = {"bin/registry": (Path(REGISTRY_BINARY).read_bytes(), 0o755),
             "etc/docker/registry/config.yml": (config.encode(), 0o644)}
    for delay in SLOW_DELAYS:
        files[f"bin/slow-registry-{delay}"] = (SLOW_REGISTRY.format(delay=delay).encode(), 0o755)
    return _import_image(work, IMAGE, files, ("etc/docker", "etc/docker/registry", "var/lib/registry"),
                         ['ENTRYPOINT ["/bin/registry", "serve"]', 'CMD ["/etc/docker/registry/config.yml"]',
                          "EXPOSE 5000"])


# TEST FIXTURE -- NOT GitLab's gitlab-ctl: starts, stops and restarts the registry process inside the
# test's GitLab-shaped container (BusyBox only); renders no config, runs no GC.
GITLAB_CTL = """#!/bin/sh
BIN=/opt/gitlab/embedded/bin/registry
CONFIG=/var/opt/gitlab/registry/config.yml
PIDFILE=/run/gitlab-registry.pid
pid() {
  p=$(cat "$PIDFILE" 2>/dev/null) && [ -n "$p" ] || return 1
  st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] && echo "$p"
}
start() {
  pid >/dev/null && return 0
  setsid "$BIN" serve "$CONFIG" </dev/null >>/var/log/gitlab-registry.log 2>&1 &
  echo $! > "$PIDFILE"
}
stop() {
  p=$(pid) || return 0
  kill -TERM "$p"; n=0
  while pid >/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  kill -KILL "$p" 2>/dev/null; rm -f "$PIDFILE"
}
case "$1" in
  start) start ;; stop) stop ;; restart) stop; start ;;
  status) if p=$(pid); then echo "run: registry: (pid $p)"; else echo "down: registry"; exit 3; fi ;;
  *) echo "usage: gitlab-ctl start|stop|restart|status registry" >&2; exit 1 ;;
esac
"""
# the container's main process: the registry under the stand-in, then nothing but waiting
GITLAB_INIT = "#!/bin/sh\n/opt/gitlab/bin/gitlab-ctl start registry\nwhile :; do sleep 3600; done\n"
OMNIBUS_CONFIG = CONFIG.replace("/var/lib/registry", "/var/opt/gitlab/gitlab-rails/shared/registry")


def build_omnibus_image(work: Path) -> str:
    """A GitLab-shaped image: the registry at /opt/gitlab/embedded/bin/registry managed by a gitlab-ctl
    stand-in; /var/opt/gitlab (config and storage) is the data volume the test bind-mounts."""
    files = {"opt/gitlab/embedded/bin/registry": (Path(REGISTRY_BINARY).read_bytes(), 0o755),
             "opt/gitlab/bin/gitlab-ctl": (GITLAB_CTL.encode(), 0o755),
             "usr/bin/gitlab-ctl": (GITLAB_CTL.encode(), 0o755),
             "assets/wrapper": (GITLAB_INIT.encode(), 0o755)}
    return _import_image(work, f"{IMAGE}-omnibus", files,
                         ("opt", "opt/gitlab", "opt/gitlab/bin", "opt/gitlab/embedded", "opt/gitlab/embedded/bin",
                          "var/opt", "var/opt/gitlab", "var/log", "assets"),
                         ['CMD ["/assets/wrapper"]', "EXPOSE 5000"])


def start_omnibus(image: str, name: str, base: Path) -> RegistryContainer:
    """The GitLab-shaped container: its data volume (/var/opt/gitlab) a host folder, port 5000 published."""
    from testcontainers.core.container import DockerContainer

    data = base / "data"
    (data / "registry").mkdir(parents=True)
    (data / "gitlab-rails/shared/registry").mkdir(parents=True)
    (base / "tmp").mkdir(exist_ok=True)
    (data / "registry/config.yml").write_text(OMNIBUS_CONFIG)
    container = DockerContainer(image).with_name(name).with_exposed_ports(5000)
    container.with_volume_mapping(str(data), "/var/opt/gitlab", "rw")
    container.with_kwargs(init=True)   # reaps the registry processes gitlab-ctl stops
    container.start()
    reg = RegistryContainer(name=name, container=container, storage_dir=data / "gitlab-rails/shared/registry",
                            config_file=data / "registry/config.yml", port=int(container.get_exposed_port(5000)),
                            dir=base)
    reg.wait_ready()
    return reg


@dataclass
class RegistryContainer:
    """A registry container started by testcontainers; quacks like a TestHost for tests.harness.images."""

    name: str
    container: object                  # testcontainers DockerContainer
    storage_dir: Path                  # host path of /var/lib/registry
    config_file: Path | None           # host path of the bind-mounted config (None: in the image)
    port: int
    dir: Path
    last_pull_error: str = ""
    env: dict = field(default_factory=dict)

    @property
    def registry_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def id(self) -> str:
        return inspect(self.name)["Id"]

    def sh(self, cmd: str, *, check: bool = True, timeout: float = 60, input: bytes | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=timeout, input=input,
                              env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise HarnessError(f"{cmd[:200]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
        return proc

    def http(self, method: str, path: str, *, body: bytes = b"", headers: dict | None = None,
             timeout: float = 10) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def config_inside(self) -> bytes:
        """The config file as the container holds it (read through the engine)."""
        return subprocess.run(["podman", "exec", self.name, "cat", "/etc/docker/registry/config.yml"],
                              capture_output=True, check=True).stdout

    def wait_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.http("GET", "/v2/", timeout=2)[0] in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise HarnessError(f"registry container {self.name} did not answer on port {self.port}")

    def stop(self) -> None:
        self.container.stop()


def inspect(name: str) -> dict:
    out = subprocess.run(["podman", "container", "inspect", name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def start_registry(image: str, name: str, base: Path, *, bind_config: bool = True, env: dict | None = None,
                   labels: dict | None = None, config: str = CONFIG, port: int = 5000,
                   storage_at: str = "/var/lib/registry", files: dict[str, bytes] | None = None) -> RegistryContainer:
    """A registry container (testcontainers over podman's API): storage bind-mounted from the host at
    `storage_at`, the config bind-mounted from the host (or left in the image), `port` published; `files`
    ({path inside: bytes}) bind-mounted read-only from the host."""
    from testcontainers.core.container import DockerContainer

    base.mkdir(parents=True, exist_ok=True)
    storage = base / "storage"
    storage.mkdir(exist_ok=True)
    (base / "tmp").mkdir(exist_ok=True)
    container = DockerContainer(image).with_name(name).with_exposed_ports(port)
    container.with_volume_mapping(str(storage), storage_at, "rw")
    config_file = None
    if bind_config:
        conf_dir = base / "conf"
        conf_dir.mkdir(exist_ok=True)
        config_file = conf_dir / "config.yml"
        config_file.write_text(config)
        container.with_volume_mapping(str(config_file), "/etc/docker/registry/config.yml", "rw")
    for key, value in (env or {}).items():
        container.with_env(key, value)
    for inside, data in (files or {}).items():
        source = base / "files" / inside.lstrip("/").replace("/", "_")
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        container.with_volume_mapping(str(source), inside, "ro")
    if labels:
        container.with_kwargs(labels=labels)
    container.start()
    reg = RegistryContainer(name=name, container=container, storage_dir=storage, config_file=config_file,
                            port=int(container.get_exposed_port(port)), dir=base, env=env or {})
    reg.wait_ready()
    return reg
