# storage_check.sh ROOT: refuse a missing storage (exit 10) or one GitLab's metadata database claims
# shellcheck shell=sh
# (exit 11); else say whether it holds repositories yet. Changes nothing.
R=$1
[ -d "$R" ] || { echo "storage_missing"; exit 10; }
[ -e "$R/docker/registry/lockfiles/database-in-use" ] && { echo "database_in_use"; exit 11; }
if [ -d "$R/docker/registry/v2/repositories" ]; then echo "repositories=yes"; else echo "repositories=no"; fi
