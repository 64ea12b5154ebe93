# include: common
# shellcheck shell=sh
# gc_wait.sh d=DIR run=ID seconds=N: gcops lost its connection while gc.sh ran; wait (at most N seconds)
# for this run's GC to end, then print gc_end= and gc_exit= as gc.sh would have. Exit 50 when the run no
# longer holds the lock; exit 0 without gc_exit when the GC is still running or left no exit record.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' RUN='' SECONDS_MAX=0
take_args "d=D run=RUN seconds=SECONDS_MAX" "$@"
lock_ours || { say "lock_lost=$(cat "$D/lock/run_id" 2>/dev/null)"; exit 50; }
end=$(( $(date +%s) + SECONDS_MAX ))
while [ ! -e "$D/gc.exit" ]; do
  pid=$(cat "$D/gc.pid" 2>/dev/null)
  case "$pid" in
    ''|*[!0-9]*) sleep 0.5; [ -e "$D/gc.exit" ] || { say "gc_gone=yes"; exit 0; } ;;   # gc.sh between its steps?
  esac
  [ "$(date +%s)" -ge "$end" ] && { say "gc_running=yes"; exit 0; }
  sleep 0.2
done
read -r rc at < "$D/gc.exit"
say "gc_end=$at"
say "gc_exit=$rc"
exit 0
