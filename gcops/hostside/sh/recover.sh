# include: common
# shellcheck shell=sh
# recover.sh d=DIR: put back what an interrupted run left, with that run's own restore.sh, then unlock.
# No marker: nothing was changed, the lock alone is removed. Exit 37 when there is no restore.sh to run (gcops then uses its local journal, or names the manual steps).
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D=''
take_args "d=D" "$@"
if [ ! -e "$D/marker" ]; then rm -rf "$D/lock"; say "nothing_to_restore=yes"; exit 0; fi
[ -f "$D/restore.sh" ] || { say "failed=no_restore_script"; exit 37; }
/bin/sh "$D/restore.sh" recover; rc=$?
if [ "$rc" -eq 0 ]; then rm -rf "$D/lock"; fi
exit "$rc"
