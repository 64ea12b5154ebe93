# include: concurrent_common
# gcops --mode concurrent: remove what the run left (marker, work dir, and the trash the sweep
# shellcheck shell=sh
# moved swept blobs into) and stop its dry-run GC if it still runs (gcops was interrupted during the
# mark). Runs after the window, before the storage is measured. Idempotent.
#   $1 storage root   $2 work dir   $3 run id
set -u
ROOT=$1 W=$2 RUN=$3
if [ -f "$W/gc.pid" ]; then
  pid=$(cat "$W/gc.pid" 2>/dev/null)
  if [ -n "$pid" ] && grep -q garbage-collect "/proc/$pid/cmdline" 2>/dev/null; then
    stop_tree "$pid" && echo "gc_stopped=$pid"
  fi
fi
rm -f "$ROOT/.gcops-mark-$RUN" "$ROOT/.gcops-mark-$RUN".*
rm -rf "$ROOT/.gcops-trash-$RUN" || { echo "trash_left=$ROOT/.gcops-trash-$RUN"; exit 1; }
rm -rf "$W"
echo "cleaned=yes"
