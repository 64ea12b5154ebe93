# include: common
# shellcheck shell=sh
# Functions the --mode concurrent scripts share (first line of theirs: `# include: concurrent_common`);
# common.sh's come with them (alive, now, ...).

# stop_tree PID: SIGTERM to a process and its descendants (the GC runs under `sh -c`; ppid is
# field 4 of /proc/<pid>/stat)
stop_tree() {
  for child in $(awk -v p="$1" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null); do stop_tree "$child"; done
  kill -TERM "$1" 2>/dev/null
}

# remove_stale ROOT BASE [KEEP]: what earlier concurrent runs left, each run's work dir
# BASE/concurrent-<run> with its markers and trash (swept blobs) in ROOT, once nothing can still
# need it: its collector ran (`collected`: a run killed in or after its window) or it is a day old,
# and it neither marks (its GC alive) nor holds the lock (in its window). Prints removed=<run>.
remove_stale() {
  for old in "$2"/concurrent-*; do
    [ -d "$old" ] && [ "$old" != "${3:-}" ] || continue
    run=${old##*/concurrent-}
    pid=$(cat "$old/gc.pid" 2>/dev/null)
    [ -n "$pid" ] && alive "$pid" && continue
    [ "$(cat "$2/lock/run_id" 2>/dev/null)" = "$run" ] && continue
    if [ -e "$old/collected" ] || [ -n "$(find "$old" -prune -mtime +0 2>/dev/null)" ]; then
      rm -f "$1/.gcops-mark-$run" "$1/.gcops-mark-$run".* && rm -rf "$1/.gcops-trash-$run" "$old" &&
        echo "removed=$run"
    fi
  done
}
