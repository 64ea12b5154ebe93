# include: common
# shellcheck shell=sh
# gc.sh d=DIR run=ID gc=COMMAND log=FILE [step=yes]: run the registry's GC (or another collector command, or
# with step=yes a step that changes the storage, like a tag deletion) inside this run's window, in a session
# of its own (restore.sh, hence the watchdog past max_window, stops the whole group by gc.pid before writes
# are accepted again), output to FILE on the host. Runs to its end even if gcops goes; if gcops is gone when
# it ends, it leaves the window itself (restore + unlock) instead of waiting for the watchdog's deadline.
# A step reads gc.sh's own stdin, and its output is printed back once it ends; a collector's is read later.
# Prints gc_start, gc_end, gc_exit (98: a restore had begun, nothing run); exit 50 when this run no longer
# holds the lock (nothing run).
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' RUN='' GC='' LOG='' STEP=no
AFTER_GC_GRACE=120
take_args "d=D run=RUN gc=GC log=LOG step=STEP" "$@"
if ! lock_ours || [ ! -e "$D/marker" ]; then say "lock_lost=$(cat "$D/lock/run_id" 2>/dev/null)"; exit 50; fi
rm -f "$D/gc.pid" "$D/gc.exit"
: > "$LOG" 2>/dev/null || { say "gc_log_unwritable=$LOG"; exit 51; }
say "gc_start=$(now)"
# an asynchronous command's stdin is /dev/null unless redirected: a step gets ours through fd 3
if [ "$STEP" = yes ]; then exec 3<&0; else exec 3</dev/null; fi
# The group's pid goes to gc.pid BEFORE the inner shell looks for a restore under way (restore.sh takes
# its "restoring" mutex BEFORE it reads gc.pid): whatever the interleaving, either restore.sh finds the
# pid and stops the group, or the inner shell sees the restore (or the window already gone) and runs
# nothing (exit 98). A GC can never start after the restore has looked for it.
# shellcheck disable=SC2016  # $$ and $1/$2 belong to the inner shell
setsid sh -c 'printf "%s\n" "$$" > "$1/gc.pid.tmp" && mv -f "$1/gc.pid.tmp" "$1/gc.pid" || exit 97
  if [ -L "$1/restoring" ] || [ ! -e "$1/marker" ]; then exit 98; fi
  sh -c "$2"' gcops-gc "$D" "$GC" > "$LOG" 2>&1 <&3 &
bg=$!
wait "$bg"; rc=$?
rm -f "$D/gc.pid"
exec 3<&-
put_text "$D/gc.exit" "$rc $(now)$NL" || true   # for gc_wait.sh, should gcops have lost this connection
if [ "$STEP" = yes ]; then
  # the step's own result lines, for gcops to parse; its collector still has to run in this window
  cat "$LOG" 2>/dev/null; rm -f "$LOG"
else
  # gcops leaves within seconds of the GC's end; should it be gone unnoticed, the watchdog need not wait
  # for the whole max_window: bring its deadline forward.
  soon=$(( $(date +%s) + AFTER_GC_GRACE ))
  if [ "$soon" -lt "$(cat "$D/deadline" 2>/dev/null || echo 0)" ]; then put_text "$D/deadline" "$soon$NL" || true; fi
fi
if tell "gc_end=$(now)" && tell "gc_exit=$rc"; then exit 0; fi
# Nobody reads our output: gcops was killed or its connection dropped. Leave the window now.
if lock_ours && /bin/sh "$D/restore.sh" gc-orphaned >/dev/null 2>&1; then unlock; fi
exit 0
