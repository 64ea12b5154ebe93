# include: common
# shellcheck shell=sh
# enter.sh key=value...: take the lock, record the intent, arm the watchdog, then go read-only (or stop).
# stdin: the read-only config bytes when write=yes.
# Exit 0 entered. 75 locked, 76 an earlier run's changes are still there, 77 the config changed since
# preflight, 78 this run's own record could not be written (no space, no permission): those four left
# the registry and its config untouched. Any other code: the host may be changed; leave.sh restores.
# Prints key=value lines: lock_held, leftover, refused, stage, watchdog, window_start, ready,
# registry_restarted (yes|no|unknown), registry_fresh (yes|no|unknown), then the window's check:
# write_probe (readonly mode), curl_rc, read_probe.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' CFG='' URL='' RUN='' OWNER='' MODE='' WRITE=no EXPECT='' NEW_SHA='' DEADLINE='' RESTART=: STOP=: START=: ALREADY_RO=no
CA='' PROBE='' GC_STOP='' RESTORE_TEXT='' RESTORE_SHA='' WATCHDOG_TEXT='' WATCHDOG_SHA=''
take_args "d=D cfg=CFG url=URL run=RUN owner=OWNER mode=MODE write=WRITE expect=EXPECT new_sha=NEW_SHA \
  deadline=DEADLINE restart=RESTART stop=STOP start=START already_ro=ALREADY_RO ca=CA probe=PROBE gc_stop=GC_STOP \
  restore_text=RESTORE_TEXT restore_sha=RESTORE_SHA watchdog_text=WATCHDOG_TEXT \
  watchdog_sha=WATCHDOG_SHA" "$@"
for v in "$D" "$CFG" "$URL" "$RUN" "$OWNER" "$MODE" "$RESTART" "$STOP" "$START" "$CA" "$PROBE" "$GC_STOP"; do
  case "$v" in *"$NL"*) say "refused=a value holds a newline"; exit 2 ;; esac
done
case "$DEADLINE" in ''|*[!0-9]*) say "refused=bad deadline"; exit 2 ;; esac
find_curl

# Undo this script's own record; nothing of the registry has changed yet. Only while this run still
# holds the lock: once another run holds it, these files and the lock are that run's.
refuse() {
  say "refused=$1"
  if lock_ours; then
    rm -f "$D/marker" "$D/params" "$D/restore.sh" "$D/watchdog.sh" "$D/deadline" "$D/original" "$D/staged" \
          "$D"/*.gcops-tmp "${REAL:-$CFG}.gcops-new" 2>/dev/null
    unlock
  fi
  exit 78
}

if ! { mkdir -p "$D" && chmod 700 "$D"; } 2>/dev/null; then
  say "refused=cannot create $D (no space, or the SSH user may not write there: set sudo = true)"; exit 78
fi
if ! mkdir "$D/lock" 2>/dev/null; then
  if [ -d "$D/lock" ]; then say "lock_held=$(head -n 1 "$D/lock/owner" 2>/dev/null)"; exit 75; fi
  say "refused=cannot create $D/lock (no space or no permission)"; exit 78
fi
put_text "$D/lock/run_id" "$RUN$NL" || { rm -rf "$D/lock"; refuse "cannot write $D/lock/run_id (no space?)"; }
put_text "$D/lock/owner" "$OWNER$NL" || true
put_text "$D/lock/pid" "$$$NL" || true   # leave.sh waits for a still-running enter before it restores
if [ -e "$D/marker" ]; then say "leftover=$(head -n 1 "$D/marker")"; unlock; exit 76; fi
rm -f "$D"/gc-*.log    # GC output an earlier run could not read back: its figures are long recorded

# The file the registry reads: a symlinked config is edited and restored at its target, the link kept.
REAL=$(readlink -f "$CFG" 2>/dev/null) || REAL=
if [ -z "$REAL" ]; then [ -L "$CFG" ] && refuse "cannot resolve the symlink $CFG"; REAL=$CFG; fi
sum=$(sha_of "$REAL")
if [ "$sum" != "$EXPECT" ]; then say "config_changed=$sum"; unlock; exit 77; fi

if [ "$MODE" = stop ]; then SERVICE=$START; elif [ "$ALREADY_RO" = yes ]; then SERVICE=:; else SERVICE=$RESTART; fi
put_text "$D/params" "cfg=$CFG${NL}real=$REAL${NL}url=$URL${NL}run=$RUN${NL}mode=$MODE${NL}service=$SERVICE${NL}already_ro=$ALREADY_RO${NL}ca=$CA${NL}probe=$PROBE${NL}gc_stop=$GC_STOP$NL" \
  || refuse "cannot write $D/params (no space?)"
put_text "$D/restore.sh" "$RESTORE_TEXT" && [ "$(sha_of "$D/restore.sh")" = "$RESTORE_SHA" ] \
  || refuse "cannot write $D/restore.sh (no space?)"
put_text "$D/watchdog.sh" "$WATCHDOG_TEXT" && [ "$(sha_of "$D/watchdog.sh")" = "$WATCHDOG_SHA" ] \
  || refuse "cannot write $D/watchdog.sh (no space?)"
[ -e "$D/watchdog.log" ] || : > "$D/watchdog.log" 2>/dev/null || refuse "cannot create $D/watchdog.log (no space?)"
# The original is kept as two hard links to its inode (no new space; mode, owner and labels kept):
# "original" to compare against, "staged" to be renamed back, so restoring needs no free block.
rm -f "$D/original" "$D/staged" "$D/last-restore"
if ln "$REAL" "$D/original" 2>/dev/null && ln "$REAL" "$D/staged" 2>/dev/null; then
  say "stage=link"
else
  rm -f "$D/original" "$D/staged"
  for f in original staged; do
    { cp -p "$REAL" "$D/$f.gcops-tmp" 2>/dev/null && [ "$(sha_of "$D/$f.gcops-tmp")" = "$EXPECT" ] \
      && mv -f "$D/$f.gcops-tmp" "$D/$f"; } || refuse "cannot keep a copy of $REAL in $D (no space?)"
  done
  say "stage=copy"
fi
put_text "$D/deadline" "$(( $(date +%s) + DEADLINE ))$NL" || refuse "cannot write $D/deadline (no space?)"
NEW=''
if [ "$MODE" = readonly ] && [ "$WRITE" = yes ]; then
  # the read-only config, complete and checked, before anything is committed to
  NEW="$REAL.gcops-new"
  { cp -p "$REAL" "$NEW" 2>/dev/null && cat > "$NEW" 2>/dev/null && [ "$(sha_of "$NEW")" = "$NEW_SHA" ]; } \
    || refuse "cannot write the read-only config beside $REAL (no space?)"
fi
# The commit point: from here on the marker says "restore me", and restore.sh can.
lock_ours || refuse "this run no longer holds the lock"
put_text "$D/marker" "run_id=$RUN${NL}mode=$MODE${NL}owner=$OWNER${NL}original_sha256=$EXPECT$NL" \
  || refuse "cannot write $D/marker (no space?)"

unit="gcops-watchdog-$(printf '%s' "$RUN" | tr -c 'A-Za-z0-9' '-')"
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 \
   && systemd-run --quiet --collect --unit="$unit" /bin/sh "$D/watchdog.sh" >/dev/null 2>&1; then
  say "watchdog=systemd-run"
else
  setsid /bin/sh "$D/watchdog.sh" </dev/null >/dev/null 2>&1 &
  say "watchdog=setsid"
fi

BEFORE=$(registry_procs)
case "$MODE" in
  stop)
    say "window_start=$(now)"
    sh -c "$STOP" </dev/null || say "service_command_failed=$?"
    wait_down 60 || { say "failed=still_answering"; exit 42; } ;;
  *)
    if [ -n "$NEW" ]; then
      say "window_start=$(now)"
      mv -f "$NEW" "$REAL" || { rm -f "$NEW"; say "failed=config_write_failed"; exit 40; }
      sh -c "$RESTART" </dev/null || say "service_command_failed=$?"
      wait_up 60 || { say "failed=not_answering"; exit 43; }
    else
      say "window_start=$(now)"
    fi ;;
esac
AFTER=$(registry_procs)
if [ -z "$AFTER" ] || [ -z "$BEFORE" ]; then
  say "registry_restarted=unknown"
else
  restarted=yes
  for p in $BEFORE; do case "$NL$AFTER$NL" in *"$NL$p$NL"*) restarted=no ;; esac; done
  say "registry_restarted=$restarted"
fi
# Did every registry process start after the config was last written (so it runs with it)?
if [ -n "$AFTER" ] && [ -r /proc/uptime ]; then
  boot=$(( $(date +%s) - $(cut -d . -f 1 /proc/uptime) ))
  mtime=$(stat -c %Y "$REAL" 2>/dev/null || echo 0)
  hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
  fresh=yes
  for p in $AFTER; do [ $(( boot + ${p#*:} / hz )) -ge "$mtime" ] || fresh=no; done
  say "registry_fresh=$fresh"
else
  say "registry_fresh=unknown"
fi
say "ready=$(now)"
# The window's own check, in the same round trip: does a write get refused, do reads answer?
if [ "$MODE" = readonly ]; then write_probe; say "write_probe=$HTTP"; say "curl_rc=$CURL_RC"; fi
read_probe; say "read_probe=$HTTP"
exit 0
