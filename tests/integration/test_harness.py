"""Smoke tests for the integration harness itself (real sshd, registry and skopeo processes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness import images, netns

SMALL = 16 * 1024  # layer bytes: tests need real blobs, not big ones


def test_distribution_host(host_factory, tmp_path):
    h = host_factory("dist")
    assert h.kind == "distribution" and h.address.startswith("10.231.")
    # strict known_hosts + client key; the config over SSH is the per-host file
    out = h.ssh("cat /etc/docker/registry/config.yml").stdout.decode()
    assert out == h.config_file.read_text() and "rootdirectory: /var/lib/docker-registry" in out
    assert h.ssh("command -v systemctl").stdout.decode().strip() == "/usr/local/sbin/systemctl"
    assert h.sh("readlink -f /proc/self/ns/net").returncode == 0
    wrong = tmp_path / "wrong_known_hosts"
    h.write_wrong_known_hosts(wrong)
    refused = h.ssh("true", check=False, known_hosts=wrong)
    assert refused.returncode == 255 and b"host key" in refused.stderr.lower()

    assert h.http("GET", "/v2/")[0] == 200
    layout = images.build_layout(tmp_path / "oci", "v1", seed=1, layer_size=SMALL)
    img = images.push(h, layout, "v1", "team/app")
    assert img.manifest_digest.startswith("sha256:") and len(img.blob_digests) == 3  # config + 2 layers
    assert img.all_digests <= images.blob_digests_on_disk(h)
    assert images.storage_du(h) > 2 * SMALL
    assert (h.storage_dir / "docker/registry/v2/repositories/team/app/_manifests/tags/v1/current/link").exists()
    assert images.pulls(h, "team/app", "v1"), h.last_pull_error
    assert images.pulls(h, "team/app", img.manifest_digest)

    assert images.delete_tag(h, "team/app", "v1") == img.manifest_digest
    status, _, _ = h.http("GET", f"/v2/team/app/manifests/{img.manifest_digest}",
                          headers={"Accept": images.ACCEPT})
    assert status == 404
    assert not images.pulls(h, "team/app", "v1")
    assert img.blob_digests <= images.blob_digests_on_disk(h)  # blobs stay until GC

    pid = h.registry_pid()
    assert pid and h.ssh("systemctl is-active docker-registry").stdout.strip() == b"active"
    h.ssh("systemctl restart docker-registry")
    assert h.registry_pid() not in (None, pid) and h.registry_up()
    assert not netns.alive(pid)
    h.ssh("systemctl stop docker-registry")
    assert not h.registry_up() and h.registry_pid() is None
    assert h.ssh("systemctl is-active docker-registry", check=False).returncode == 3
    h.ssh("systemctl stop docker-registry")  # stopping a stopped registry is fine
    h.sh("systemctl start docker-registry && systemctl start docker-registry")
    h.wait_registry(up=True)


def test_omnibus_host(host_factory, tmp_path):
    h = host_factory("gitlab", "omnibus")
    assert h.config_path == "/var/opt/gitlab/registry/config.yml"
    out = h.ssh("/opt/gitlab/embedded/bin/registry --version").stdout.decode()
    assert "distribution" in out
    status = h.ssh("gitlab-ctl status registry")
    assert status.stdout.startswith(b"run: registry: (pid ") and str(h.registry_pid()).encode() in status.stdout
    assert h.ssh("cat /var/opt/gitlab/registry/config.yml").stdout.decode() == h.config_file.read_text()
    assert "rootdirectory: /var/opt/gitlab/gitlab-rails/shared/registry" in h.config_file.read_text()
    assert h.ssh("test ! -e /etc/docker/registry/config.yml", check=False).returncode == 0
    layout = images.build_layout(tmp_path / "oci", "1.0", seed=2, layer_size=SMALL, layers=1)
    img = images.push(h, layout, "1.0", "group/project")
    assert images.pulls(h, "group/project", "1.0"), h.last_pull_error
    assert img.all_digests <= images.blob_digests_on_disk(h)
    assert (h.storage_dir / "docker/registry/v2/repositories/group/project").is_dir()
    pid = h.registry_pid()
    h.ssh("gitlab-ctl restart registry")
    assert h.registry_pid() not in (None, pid) and h.registry_up()
    assert h.ssh("gitlab-ctl stop registry").stdout.startswith(b"ok: down: registry")
    assert h.ssh("gitlab-ctl status registry", check=False).returncode == 3
    h.ssh("/opt/gitlab/bin/gitlab-ctl start registry")
    assert h.registry_up()


def test_shared_storage(host_factory, tmp_path):
    shared = tmp_path / "shared-storage"
    a = host_factory("node-a", storage_dir=shared)
    b = host_factory("node-b", storage_dir=shared)
    assert a.storage_dir == b.storage_dir == shared.resolve() and a.address != b.address
    layout = images.build_layout(tmp_path / "oci", "ha", seed=3, layer_size=SMALL)
    img = images.push(a, layout, "ha", "shared/app")
    assert images.pulls(a, "shared/app", "ha") and images.pulls(b, "shared/app", "ha"), b.last_pull_error
    assert images.describe(b, "shared/app", "ha").manifest_digest == img.manifest_digest


def test_multiarch_index(host_factory, tmp_path):
    h = host_factory("multi")
    layout = images.build_multiarch_layout(tmp_path / "oci", "multi", seed=4, layer_size=SMALL)
    img = images.push(h, layout, "multi", "lib/multi", all_platforms=True)
    assert img.media_type == images.OCI_INDEX and len(img.child_digests) == 2
    assert len(img.blob_digests) == 4  # config + layer per platform
    assert img.all_digests <= images.blob_digests_on_disk(h)
    assert images.pulls(h, "lib/multi", "multi", all_platforms=True), h.last_pull_error
    for child in img.child_digests:
        assert images.get_manifest(h, "lib/multi", child)[0] == 200


def test_readonly_and_extra_config(host_factory, tmp_path):
    h = host_factory("ro", readonly=True, extra_config="# appended by the test\nnotifications: {}\n")
    text = h.config_file.read_text()
    assert "    readonly:\n      enabled: true" in text and text.endswith("notifications: {}\n")
    status, headers, body = h.http("POST", "/v2/any/blobs/uploads/")
    assert status == 405 and h.registry_up()


def test_close_leaves_nothing(host_factory, tmp_path):
    h = host_factory("gone")
    reg, sshd, anchor, name = h.registry_pid(), h.sshd_pid(), h._anchor, h.netns
    assert reg and sshd and anchor
    h.stop_sshd()  # unreachable over SSH, still alive inside
    assert h.ssh("true", check=False, timeout=20).returncode == 255
    assert h.registry_up() and h.sh("systemctl is-active docker-registry").stdout.strip() == b"active"
    h.start_sshd()
    h.ssh("true")
    session = subprocess.Popen(h.ssh_argv() + ["sleep 600"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.close()
        h.close()  # idempotent
    finally:
        session.wait(10)
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in listing and not Path(f"/run/netns/{name}").exists()
    assert not Path(f"/sys/class/net/gcv{h.n}r").exists()
    for pid in (reg, sshd, anchor):
        assert not netns.alive(pid)
    leftovers = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
                 if f"{netns.ENV_MARK}={name}".encode() in _environ(p)]
    assert leftovers == []


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def test_cleanup_stale_removes_hosts_of_a_dead_run(client_key, tmp_path):
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from tests.harness import start_host\n"
        f"h = start_host('crashed', base_dir=Path({str(tmp_path)!r}), client_key=Path({str(client_key)!r}))\n"
        "print(h.netns, h.n, h.registry_pid(), h.sshd_pid(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], timeout=60)
    name, n, reg, sshd = p.stdout.split()
    assert Path(f"/run/netns/{name}").exists() and netns.alive(int(reg)) and netns.alive(int(sshd))
    netns.cleanup_stale()
    assert not Path(f"/run/netns/{name}").exists() and not Path(f"/sys/class/net/gcv{n}r").exists()
    assert not netns.alive(int(reg)) and not netns.alive(int(sshd))
