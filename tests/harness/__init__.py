"""Integration-test harness for gcops.

Each test host is its own network + mount namespace: sshd on <address>:22, a real
registry on the host's own 127.0.0.1:5000, the standard paths of its kind bound to
per-host directories, and a systemctl / gitlab-ctl stand-in on PATH (tests/harness/bin).

    h = host_factory("a")                       # fixture in tests/conftest.py
    h.ssh("systemctl restart docker-registry")  # OpenSSH, strict known_hosts
    h.sh("cat /etc/docker/registry/config.yml")  # nsenter, no SSH
    img = images.push(h, images.build_layout(tmp_path / "oci", "v1", seed=1, layer_size=4096), "v1", "team/app")

Modules: hosts (TestHost, start_host), images (OCI layouts, skopeo push/pull),
kinds (paths per kind, registry config), sshd (keys, known_hosts), netns (low level).
"""
from .hosts import CommandFailed, TestHost, cleanup_stale, combine_known_hosts, make_client_key, start_host
from .netns import HarnessError

__all__ = ["CommandFailed", "HarnessError", "TestHost", "cleanup_stale", "combine_known_hosts",
           "make_client_key", "start_host"]
