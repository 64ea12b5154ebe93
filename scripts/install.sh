#!/bin/sh
# Install everything gcops, its demo and its test suite need on Debian (run as root):
# the real registry, skopeo, OpenSSH, busybox, dash and shellcheck (the host scripts are tested
# under dash and BusyBox sh, and linted), PostgreSQL (the shared-history tests start their own
# server from its binaries), and a virtualenv (.venv) with gcops in it.
set -eu
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  docker-registry skopeo openssh-server openssh-client curl ca-certificates redis-server redis-tools dash busybox \
  iproute2 util-linux procps coreutils findutils python3 python3-venv python3-pip \
  sudo tmux chromium fonts-dejavu-core openssl e2fsprogs shellcheck postgresql >/dev/null
# Containerised registries: podman (root, runc, cgroupfs) serves the tests' containers, also to the docker
# CLI and to testcontainers through its Docker-compatible API socket.
apt-get install -y -qq --no-install-recommends podman runc conmon catatonit containernetworking-plugins \
  slirp4netns fuse-overlayfs iptables docker.io >/dev/null
mkdir -p /etc/containers
# crun and the default ulimits are refused inside this kind of sandbox; runc with explicit ulimits is not
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
# The static BusyBox of the test registry image (`registry:2` has a BusyBox shell), unpacked rather than
# installed: busybox-static would replace the host's dynamic busybox, which the host-script tests use.
if [ ! -x /opt/gcops-test/busybox-static/bin/busybox ]; then
  mkdir -p /opt/gcops-test && (cd /opt/gcops-test && rm -f busybox-static_*.deb && apt-get download -qq busybox-static \
    && dpkg-deb -x busybox-static_*.deb busybox-static && rm -f busybox-static_*.deb)
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
echo "gcops installed: $(.venv/bin/gcops --version)"
