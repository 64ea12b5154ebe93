#!/bin/sh
# Install everything, then run the whole test suite (unit + integration against real sshd and registries).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
# Two workers, each test file on one of them (its module fixtures stay together); the test hosts are
# network namespaces that never share a name, address or process, so files run side by side.
exec .venv/bin/python -m pytest -q -ra -n 2 --dist loadfile "$@"
