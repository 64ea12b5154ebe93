# include: common
# shellcheck shell=sh
# restore.sh [WHO [probe]]: installed in the state dir by enter.sh; gcops, the watchdog and `gcops recover` all
# run this same file. Stops this run's GC, puts the original config back (a rename: no free space
# needed), brings the service back, verifies. Idempotent and serialised. Exit 0 only when the registry
# answers with the original config; prints restored=yes, window_end=, probe_after=; with "probe", first
# probe_after_gc= (do writes still get refused, i.e. did read-only hold?), taken under the same mutex.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D=$(cd "$(dirname "$0")" && pwd) || exit 35
WHO=${1:-gcops}
PROBE_FIRST=${2:-}
CFG='' REAL='' URL='' RUN='' MODE='' SERVICE=: ALREADY_RO=no CA='' PROBE='' GC_STOP=''
read_params || { say "params_unreadable=$D/params"; exit 35; }
find_curl
# One restorer at a time: a symlink is created atomically and needs no data block.
end=$(( $(date +%s) + 300 ))
until ln -s "$$" "$D/restoring" 2>/dev/null; do
  holder=$(readlink "$D/restoring" 2>/dev/null)
  if [ -n "$holder" ] && ! alive "$holder"; then rm -f "$D/restoring"; continue; fi
  [ "$(date +%s)" -ge "$end" ] && { say "failed=restore_busy"; exit 33; }
  sleep 0.2
done
trap 'rm -f "$D/restoring"' EXIT
if [ ! -e "$D/marker" ]; then
  say "already_restored=yes"
  grep -E '^(window_end|by)=' "$D/last-restore" 2>/dev/null | sed 's/^by=/restored_by=/'
  exit 0
fi
say "restore_by=$WHO"
if [ "$PROBE_FIRST" = probe ]; then write_probe; say "probe_after_gc=$HTTP"; fi
# This run's GC runs in a session of its own (gc.sh); stop the whole group before anything else.
stop_gc || { say "gc_still_running=$GC_PID"; exit 36; }
if ! cmp -s "$D/original" "$REAL"; then
  if [ -e "$D/staged" ] && mv -f "$D/staged" "$REAL" 2>/dev/null && cmp -s "$D/original" "$REAL"; then
    say "config_restored=rename"
  elif cp -p "$D/original" "$REAL.gcops-restore" 2>/dev/null && cmp -s "$D/original" "$REAL.gcops-restore" \
       && mv -f "$REAL.gcops-restore" "$REAL" 2>/dev/null; then
    say "config_restored=copy"
  else
    rm -f "$REAL.gcops-restore"; say "failed=config_restore_failed"; exit 30
  fi
fi
cmp -s "$D/original" "$REAL" || { say "failed=config_differs"; exit 32; }
if [ "$SERVICE" != : ]; then sh -c "$SERVICE" </dev/null || say "service_command_failed=$?"; fi
wait_up 60 || { say "failed=not_answering"; exit 31; }
end_at=$(now); say "window_end=$end_at"
put_text "$D/last-restore" "window_end=$end_at${NL}by=$WHO$NL" || true
write_probe; code=$HTTP; say "probe_after=$code"
if [ "$ALREADY_RO" = yes ]; then
  case "$code" in 405|401|403) ;; *) say "failed=expected_read_only"; exit 34 ;; esac
else
  [ "$code" != 405 ] || { say "failed=still_read_only"; exit 34; }
  case "$code" in 5*|000) say "failed=write_probe_failed"; exit 34 ;; esac
fi
rm -f "$D/marker"
rm -f "$D/gc.pid" "$D/staged" "$D/original"
say "restored=yes"
exit 0
