# include: concurrent_common
# gcops --mode concurrent, step 1 (writes still accepted): stamp a marker on the storage's own
# shellcheck shell=sh
# clock, then run the registry's own GC in dry-run; the blobs it calls eligible are the candidates.
#   $1 storage root   $2 work dir (host side, gcops-owned)   $3 run id   $4 the GC dry-run command
# The marker lives in the storage root, beside docker/ (same filesystem and clock as every link
# the registry writes; never inside docker/, the registry's tree). A link written after the GC
# starts is strictly newer than the marker: the GC starts only once a file written after the marker
# shows a later mtime (file times are coarse: a jiffy, or a second on some filesystems).
# Prints key=value lines: marked_at, gc_exit, candidates, gc_error (the log's last lines on failure),
# then links_since_mark and watched (the delta's first part, below).
set -u
ROOT=$1 W=$2 RUN=$3 GC=$4
MARK="$ROOT/.gcops-mark-$RUN"
TICK="$MARK.tick"

[ -d "$ROOT/docker" ] || { echo "storage_missing=$ROOT/docker"; exit 10; }
mkdir -p "$W" && chmod 700 "$W" || { echo "workdir_failed=$W"; exit 11; }
rm -f "$W/candidates" "$W/gc.log" "$W/gc.pid" "$W/protected" "$W/sweep" "$W/links.a" "$W/dirs" "$W/watch"
# What runs gcops killed in or after their window left, or left a day or more ago
remove_stale "$ROOT" "$(dirname "$W")" "$W" > /dev/null
# stamp FILE: create it, then wait until a file written after it shows a later mtime
stamp() {
  rm -f "$1" "$TICK"
  : > "$1" || { echo "marker_failed=$1"; exit 12; }
  n=0
  until : > "$TICK" && [ -n "$(find "$TICK" -newer "$1" 2>/dev/null)" ]; do
    n=$((n + 1))
    [ "$n" -ge 300 ] && { rm -f "$TICK"; echo "clock_stuck=$1"; exit 13; }
    sleep 0.01
  done
  rm -f "$TICK"
}
rm -f "$MARK.2"
stamp "$MARK"
echo "marked_at=$(now)"

echo "gc_start=$(now)"
/bin/sh -c "$GC" > "$W/gc.log" 2>&1 </dev/null &
pid=$!
echo "$pid" > "$W/gc.pid"
# gcops reads this output while the GC runs; once it is gone (killed, connection dropped) a write
# fails: then the dry-run is stopped and what this run made is removed (nothing else was changed).
trap '' PIPE HUP
n=0
while alive "$pid"; do
  n=$((n + 1))
  if [ $((n % 5)) -eq 0 ] && ! echo "marking=$(now)" 2>/dev/null; then
    stop_tree "$pid"; rm -f "$MARK" "$MARK".*; rm -rf "$W"; exit 0
  fi
  sleep 0.2
done
wait "$pid"; rc=$?
rm -f "$W/gc.pid"
echo "gc_end=$(now)"
echo "gc_exit=$rc"
if [ "$rc" -ne 0 ]; then
  tail -n 3 "$W/gc.log" | sed 's/^/gc_error=/'
  exit 0
fi
# upstream: `blob eligible for deletion: sha256:...`; GitLab's fork: the same message as a logrus
# event (text or JSON) with a digest field. The first sha256 digest on such a line is the blob.
awk '/blob eligible for deletion/ {
  if (match($0, /sha256:[0-9a-f]+/) && RLENGTH == 71) print substr($0, RSTART, RLENGTH)
}' "$W/gc.log" > "$W/candidates" || { echo "candidates_failed=yes"; exit 14; }
echo "candidates=$(wc -l < "$W/candidates" | tr -d ' ')"

# The delta's first part, writes still accepted, so that the window only looks at what changed
# since: a second marker ($MARK.2), then
# - links.a: every link written since the first marker (what the window's delta protects too);
# - dirs: every directory under repositories/; watch: those the window stats for a changed mtime,
#   every directory but a leaf whose link is older than the first marker. Creating or removing an
#   entry changes its directory's mtime, so a link created after the second marker shows as a
#   watched directory newer than it (a new directory's parent, or a leaf whose link is new). A link
#   written between the markers is in links.a (the window reads its content then: a tag's
#   current/link may have been rewritten since). A leaf left unwatched held its link from before
#   the first marker through the mark, so the mark kept what that link names; whatever is written
#   there later names the same digest (its path), or, for tags/<t>/current/link, a manifest whose
#   own revision link the mark saw, or is in links.a, or is new in a watched directory.
REPOS="$ROOT/docker/registry/v2/repositories"
stamp "$MARK.2"
: > "$W/links.a"; : > "$W/dirs"; : > "$W/links.old"; : > "$W/watch"
if [ -d "$REPOS" ]; then
  (cd "$REPOS" && find . -type f -name link -newer "$MARK" > "$W/links.a" &&
     find . -type d > "$W/dirs" && find . -type f -name link ! -newer "$MARK" > "$W/links.old") ||
    { echo "walk_failed=$REPOS"; exit 15; }
  awk -v LINKS="$W/links.old" 'BEGIN {
      while ((getline l < LINKS) > 0) if (l ~ /\/link$/) held[substr(l, 1, length(l) - 5)] = 1
      close(LINKS) }
    { dir[++n] = $0; p = $0; sub(/\/[^\/]*$/, "", p); parent[p] = 1 }
    END { for (i = 1; i <= n; i++) if (!(dir[i] in held) || (dir[i] in parent)) print dir[i] }' \
    "$W/dirs" > "$W/watch" || { echo "walk_failed=$REPOS"; exit 15; }
  rm -f "$W/links.old"
fi
echo "links_since_mark=$(wc -l < "$W/links.a" | tr -d ' ')"
echo "watched=$(wc -l < "$W/watch" | tr -d ' ')"
