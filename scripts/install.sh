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
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'
echo "gcops installed: $(.venv/bin/gcops --version)"
