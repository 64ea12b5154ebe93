# include: common
# shellcheck shell=sh
# leave.sh d=DIR run=ID probe_gc=yes|no: if this run still holds the lock, run restore.sh (which first says
# whether writes were still refused, with probe_gc=yes) and unlock. When the lock is no longer ours (the watchdog, gc.sh or
# `gcops recover` restored first), report whether the node is restored so that gcops can judge.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' RUN='' PROBE_GC=no
take_args "d=D run=RUN probe_gc=PROBE_GC" "$@"
if ! lock_ours; then
  say "not_ours=yes"
  if [ -e "$D/marker" ]; then say "marker=present"; else say "marker=absent"; fi
  # who restored, and when writes were accepted again (restore.sh's own record)
  grep -E '^(window_end|by)=' "$D/last-restore" 2>/dev/null | sed 's/^by=/restored_by=/'
  exit 0
fi
# An enter of this run may still be running (its connection dropped): let it reach its end first.
pid=$(cat "$D/lock/pid" 2>/dev/null); n=0
entering() { alive "$1" && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q gcops-enter; }
case "$pid" in ''|*[!0-9]*) ;; *) while entering "$pid" && [ "$n" -lt 900 ]; do n=$((n + 1)); sleep 0.2; done ;; esac
if [ "$PROBE_GC" = yes ]; then /bin/sh "$D/restore.sh" gcops probe; rc=$?; else /bin/sh "$D/restore.sh" gcops; rc=$?; fi
if [ "$rc" -eq 0 ]; then unlock; fi
say "leave_exit=$rc"
exit "$rc"
