# include: common
# shellcheck shell=sh
# watchdog.sh: started detached by enter.sh. While this run holds the lock, restore once the deadline
# (max_window + grace) has passed: gcops may have been killed, or the link to it lost.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D=$(cd "$(dirname "$0")" && pwd) || exit 1
CFG='' REAL='' URL='' RUN='' MODE='' SERVICE=: ALREADY_RO=no CA='' PROBE='' GC_STOP=''
read_params || exit 1
log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$D/watchdog.log" 2>/dev/null || true; }
retry=0
while :; do
  lock_ours || exit 0
  deadline=$(cat "$D/deadline" 2>/dev/null)   # re-read: gc.sh brings it forward once the GC has ended
  case "$deadline" in ''|*[!0-9]*) deadline=0 ;; esac
  [ "$retry" -gt "$deadline" ] && deadline=$retry
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "watchdog $RUN: deadline passed, restoring"
    if /bin/sh "$D/restore.sh" watchdog >> "$D/watchdog.log" 2>&1; then
      unlock; log "watchdog $RUN: restored"; exit 0
    fi
    log "watchdog $RUN: restore failed; again in 30 s"
    retry=$(( $(date +%s) + 30 ))
  fi
  sleep 1
done
