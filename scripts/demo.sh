#!/bin/sh
# Install everything, then reclaim real garbage from a throwaway local registry with `gcops run`.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install.sh
exec .venv/bin/python scripts/demo.py "$@"
