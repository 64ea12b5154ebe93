# include: common
# gcops --mode concurrent, step 2, the collector that runs inside the verified write-refused window
# shellcheck shell=sh
# in place of the registry's garbage-collect:
# 1. the delta: every link under repositories/ newer than the marker (those concurrent_mark.sh
#    found before the window, "$2/links.a", and those written since its second marker, found here
#    from the directories it watches), and what it keeps alive, written to "$2/protected":
#    - the digest each new link names, from its content and from its path (a link a killed request
#      left empty still names its digest in its path, except tags/<t>/current/link, whose manifest
#      the same request linked under tags/<t>/index/ first);
#    - for a link under _manifests/: every sha256 digest its manifest blob mentions (config, layers,
#      index/list children, subject: anything that looks like a digest), and, recursively, those of
#      every such digest that is a manifest of the same repository.
#    A manifest blob that cannot be read (unreadable=<digest>) stops here: nothing is swept, since
#    what it keeps alive is unknown.
# 2. the sweep: every candidate ("$2/candidates", from concurrent_mark.sh) the delta does not
#    protect leaves the registry's tree the way the registry's own sweep removes a blob
#    (distribution's vacuum.RemoveBlob deletes the directory blobs/sha256/<xx>/<hex>), in batches:
#    the directory is renamed into the run's trash, "$1/.gcops-trash-$3", beside docker/ (one
#    rename a blob: to the registry the blob is gone, and a push after the window uploads it anew).
#    The trash is emptied after the window (concurrent_cleanup.sh), before the storage is measured.
#    Where the trash is not on the blobs' own mount (a rename would copy), the directories are
#    deleted in place instead. SIGTERM (gcops' restore stopping this collector) is honoured between
#    batches only, so once this shell is gone no move of ours is still under way. The swept digests
#    are left in "$2/swept".
#   $1 storage root   $2 work dir   $3 run id   [$4 blobs per deletion batch, default 2048]
# Prints links, manifests_read, protected, bad_links, unreadable_count, then candidates, spared,
# swept, and collect_exit (0: done; 1: nothing swept; 2: stopped part-way); delta_start, delta_end and
# sweep_end (host clock) time the two steps.
set -u
ROOT=$1 W=$2 RUN=$3
stop=0
trap 'stop=1' TERM INT HUP
trap ': > "$W/collected"' EXIT   # the next mark may remove this work dir (its window is over)
MARK="$ROOT/.gcops-mark-$RUN"
V2="$ROOT/docker/registry/v2"
BLOBS="$V2/blobs/sha256"
MARK2="$MARK.2"
for f in "$MARK" "$MARK2"; do [ -f "$f" ] || { echo "marker_missing=$f"; exit 30; }; done
for f in candidates links.a dirs watch; do [ -f "$W/$f" ] || { echo "work_file_missing=$W/$f"; exit 31; }; done
# A storage clock stepped back since the mark would hide links written after it: refuse.
: > "$MARK.now" && [ -n "$(find "$MARK.now" -newer "$MARK" -newer "$MARK2" 2>/dev/null)" ] ||
  { rm -f "$MARK.now"; echo "clock_went_back=$MARK"; echo "collect_exit=1"; exit 0; }
rm -f "$MARK.now"
echo "delta_start=$(now)"
rm -f "$W/protected" "$W/sweep" "$W/swept" "$W"/batch.* "$W/changed" "$W/new" "$W/links.b"
# finds over a list of paths (xargs): a path gone since the list was made is no failure (its parent
# directory changed too, and is looked at); any other complaint is
only_vanished() { ! grep -v 'No such file or directory' "$1" | grep -q .; }
: > "$W/links.b"
if [ ! -s "$W/dirs" ]; then
  # no repositories/ at the mark: whatever is there now is new
  if [ -d "$V2/repositories" ]; then
    (cd "$V2/repositories" && find . -type f -name link) > "$W/links.b" || { echo "find_failed=yes"; exit 32; }
  fi
elif [ -s "$W/watch" ]; then
  cd "$V2/repositories" || { echo "find_failed=yes"; exit 32; }
  # the links written since the second marker (concurrent_mark.sh says why this finds them all):
  # watched directories newer than it (one stat each, nothing listed), then in each, the entries
  # that are not known directories: new, so every link under them is
  tr '\n' '\0' < "$W/watch" | LC_ALL=C xargs -0 sh -c 'exec find "$@" -maxdepth 0 -newer "$0"' "$MARK2" \
    > "$W/changed" 2> "$W/find.err"
  only_vanished "$W/find.err" || { echo "find_failed=yes"; exit 32; }
  if [ -s "$W/changed" ]; then
    tr '\n' '\0' < "$W/changed" | LC_ALL=C xargs -0 sh -c 'exec find "$@" -mindepth 1 -maxdepth 1' sh 2> "$W/find.err" |
      awk -v DIRS="$W/dirs" 'BEGIN { while ((getline l < DIRS) > 0) known[l] = 1; close(DIRS) }
        !($0 in known)' > "$W/new"
    only_vanished "$W/find.err" || { echo "find_failed=yes"; exit 32; }
    if [ -s "$W/new" ]; then
      tr '\n' '\0' < "$W/new" | LC_ALL=C xargs -0 sh -c 'exec find "$@" -type f -name link' sh \
        > "$W/links.b" 2> "$W/find.err"
      only_vanished "$W/find.err" || { echo "find_failed=yes"; exit 32; }
    fi
  fi
  cd / || exit 32
fi
cat "$W/links.a" "$W/links.b" > "$W/links" || { echo "find_failed=yes"; exit 32; }
awk -v V2="$V2" -v OUT="$W/protected" '
function valid(d) { return d ~ /^sha256:[0-9a-f]+$/ && length(d) == 71 }
function protect(d) { if (!(d in prot)) { prot[d] = 1; print d > OUT; np++ } }
function want(repo, d) { if (!((repo SUBSEP d) in queued)) { queued[repo SUBSEP d] = 1; qr[++qn] = repo; qd[qn] = d } }
function read_manifest(repo, d,    f, line, c, got, ref, rl) {
  f = V2 "/blobs/sha256/" substr(d, 8, 2) "/" substr(d, 8) "/data"
  c = ""; got = 0
  while ((getline line < f) > 0) { c = c line "\n"; got = 1 }
  close(f)
  if (!got) { print "unreadable=" d; bad_read++; return }
  nread++
  while (match(c, /sha256:[0-9a-f]+/)) {
    ref = substr(c, RSTART, RLENGTH); c = substr(c, RSTART + RLENGTH)
    if (!valid(ref)) continue
    protect(ref)
    rl = V2 "/repositories/" repo "/_manifests/revisions/sha256/" substr(ref, 8) "/link"
    if ((getline line < rl) >= 0) { close(rl); want(repo, ref) }
  }
}
$0 in seen { next }
{
  seen[$0] = 1
  path = substr($0, 3); nlinks++
  repo = path; manifest = 0
  if (index(path, "/_manifests/") > 0) { repo = substr(path, 1, index(path, "/_manifests/") - 1); manifest = 1 }
  else if (index(path, "/_layers/") > 0) repo = substr(path, 1, index(path, "/_layers/") - 1)
  else { repo = "" }
  # the digest in the path: .../sha256/<hex>/link
  n = split(path, part, "/")
  if (n >= 3 && part[n - 2] == "sha256") {
    d = "sha256:" part[n - 1]
    if (valid(d)) { protect(d); if (manifest) want(repo, d) }
  }
  content = ""
  f = V2 "/repositories/" path
  if ((getline content < f) < 0) content = ""
  close(f)
  if (valid(content)) { protect(content); if (manifest) want(repo, content) }
  else if (!(n >= 3 && part[n - 2] == "sha256")) { bad++ }
}
END {
  for (i = 1; i <= qn; i++) read_manifest(qr[i], qd[i])
  printf "links=%d\nmanifests_read=%d\nprotected=%d\nbad_links=%d\nunreadable_count=%d\n", nlinks, nread, np, bad, bad_read
}' "$W/links" > "$W/delta" || { echo "delta_failed=yes"; exit 33; }
cat "$W/delta"
echo "delta_end=$(now)"
[ -f "$W/protected" ] || : > "$W/protected"
if grep -q '^unreadable=' "$W/delta" || [ "$stop" -ne 0 ]; then echo "collect_exit=1"; exit 0; fi

awk -v SWEPT="$W/swept" -v PROT="$W/protected" 'BEGIN { while ((getline l < PROT) > 0) p[l] = 1; close(PROT) }
{ total++ }
$0 in p { spared++; next }
/^sha256:[0-9a-f]+$/ && length($0) == 71 && !($0 in seen) {
  seen[$0] = 1; hex = substr($0, 8); print substr(hex, 1, 2) "/" hex; print $0 > SWEPT
}
END { printf "candidates=%d\nspared=%d\n", total, spared > "/dev/stderr" }' "$W/candidates" \
  > "$W/sweep" 2> "$W/sweep.counts" || { echo "sweep_list_failed=yes"; exit 43; }
[ -f "$W/swept" ] || : > "$W/swept"
cat "$W/sweep.counts"
cd "$BLOBS" || { echo "blobs_missing=$BLOBS"; exit 42; }
TRASH="$ROOT/.gcops-trash-$RUN"
rm -rf "$TRASH" && mkdir "$TRASH" || { echo "trash_failed=$TRASH"; exit 46; }
# the mount point holding a path (the last field of df -P; GNU and BusyBox alike)
mount_of() { df -P "$1" 2>/dev/null | awk 'NR == 2 { print $NF }'; }
sweep=remove
if [ "$(stat -c %d "$TRASH" 2>/dev/null)" = "$(stat -c %d . 2>/dev/null)" ] &&
   [ -n "$(mount_of .)" ] && [ "$(mount_of "$TRASH")" = "$(mount_of .)" ]; then
  sweep=move
else
  rmdir "$TRASH"
fi
echo "sweep_by=$sweep"
# move: where mv fails (a source already gone, or no room left for the trash directory's entries on
# a full disk), what is still in place is deleted in place, as the registry's own sweep does
# shellcheck disable=SC2016
MOVE='mv -f -- "$@" "$0" 2>/dev/null || rm -rf -- "$@"'
B=${4:-2048}   # a batch: one xargs and a few mv (or rm) processes; the sweep stops only between batches
total=$(awk -v P="$W/batch." -v B="$B" '{ f = P sprintf("%06d", int((NR - 1) / B))
  if (f != last) { if (last != "") close(last); last = f }
  print > f } END { print NR + 0 }' "$W/sweep") || { echo "sweep_split_failed=yes"; exit 44; }
n=0
for b in "$W"/batch.*; do
  [ -f "$b" ] || continue
  if [ "$stop" -ne 0 ]; then echo "swept=$n"; echo "collect_exit=2"; exit 0; fi
  if [ "$sweep" = move ]; then xargs sh -c "$MOVE" "$TRASH" < "$b"; else xargs rm -rf -- < "$b"; fi ||
    { echo "swept=$n"; echo "sweep_failed=yes"; exit 45; }
  n=$((n + B)); [ "$n" -gt "$total" ] && n=$total
done
echo "sweep_end=$(now)"
echo "swept=$n"
echo "collect_exit=0"
