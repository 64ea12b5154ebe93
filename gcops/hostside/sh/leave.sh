# include: common
# leave.sh d=DIR run=ID probe_gc=yes|no: if this run still holds the lock, say whether writes were still
# refused after GC, run restore.sh and unlock. When the lock is no longer ours (the watchdog, gc.sh or
# `gcops recover` restored first), report whether the node is restored so that gcops can judge.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' RUN='' PROBE_GC=no
for kv in "$@"; do
  case "$kv" in
    d=*) D=${kv#d=} ;; run=*) RUN=${kv#run=} ;; probe_gc=*) PROBE_GC=${kv#probe_gc=} ;;
    *) say "bad_argument=${kv%%=*}"; exit 2 ;;
  esac
done
if ! lock_ours; then
  say "not_ours=yes"
  if [ -e "$D/marker" ]; then say "marker=present"; else say "marker=absent"; fi
  exit 0
fi
# An enter of this run may still be running (its connection dropped): let it reach its end first.
pid=$(cat "$D/lock/pid" 2>/dev/null); n=0
entering() { alive "$1" && tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -q gcops-enter; }
case "$pid" in ''|*[!0-9]*) ;; *) while entering "$pid" && [ "$n" -lt 900 ]; do n=$((n + 1)); sleep 0.2; done ;; esac
if [ "$PROBE_GC" = yes ]; then
  CFG='' REAL='' URL='' MODE='' SERVICE=: ALREADY_RO=no CA='' PROBE=''
  if read_params; then find_curl; write_probe; say "probe_after_gc=$HTTP"; fi
fi
/bin/sh "$D/restore.sh" gcops; rc=$?
if [ "$rc" -eq 0 ]; then rm -rf "$D/lock"; fi
say "leave_exit=$rc"
exit "$rc"
