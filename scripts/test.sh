#!/bin/sh
# Install everything, then run the whole test suite (unit + integration against real sshd and registries).
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
exec .venv/bin/python -m pytest -q -ra "$@"
