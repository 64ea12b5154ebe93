# Measure a filesystem-driver storage tree in one pass; "$1" is the storage root.
# shellcheck shell=sh
# Portable: GNU coreutils/findutils and BusyBox applets alike (no find -printf,
# no du -B, no df -B). Prints key=value lines:
#   fs_used_bytes=N   used bytes of the filesystem holding the tree (df's "used")
#   tree_bytes=N      allocated bytes of every entry, directories too (du -sB1)
#   blobs=N           blob data files (docker/registry/v2/blobs/sha256/xx/<hex>/data)
#   vanished=N        entries deleted while the walk ran (not counted)
# Anything unexpected (a missing tool, an unparsable line, a failing command)
# exits non-zero with one line on stderr: a figure that was not measured is
# never printed, least of all as 0.
set -u
LC_ALL=C; export LC_ALL  # error texts are matched below
root=${1:?measure.sh: no storage root given}
for tool in find stat awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "measure: '$tool' not found on the host" >&2; exit 3; }
done
cd "$root" || { echo "measure: cannot enter $root" >&2; exit 3; }

# statfs: fundamental block size, total and free blocks; used = total - free, as df counts it
fs=$(stat -f -c '%S %b %f' .) || { echo "measure: stat -f failed on $root" >&2; exit 4; }
fs_used=$(printf '%s\n' "$fs" | awk 'NF == 3 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ \
    { printf "%.0f\n", ($2 - $3) * $1; ok = 1 } END { if (!ok) exit 1 }') \
    || { echo "measure: unexpected stat -f output: $fs" >&2; exit 4; }

# One walk: "<blocks> <block size> <name>" per entry. GNU find prints it itself
# (-printf, twice as fast); elsewhere (BusyBox) stat does, in batches. stderr
# joins the stream so that a file deleted mid-walk is told apart from a real
# failure, and find's exit status arrives as the last line (no pipefail in sh).
if find . -maxdepth 0 -printf '' >/dev/null 2>&1; then
    walk() { find . -printf '%b 512 %p\n'; }
else
    walk() { find . -exec stat -c '%b %B %n' {} +; }
fi
{ walk 2>&1; echo "gcops-find-exit $?"; } | awk -v fs_used="$fs_used" '
    /^[0-9]+ [0-9]+ \./ {
        bytes += $1 * $2
        name = substr($0, length($1) + length($2) + 3)
        if (name ~ /^\.\/docker\/registry\/v2\/blobs\/sha256\/[0-9a-f][0-9a-f]\/[0-9a-f]+\/data$/) blobs++
        next
    }
    /^gcops-find-exit [0-9]+$/ { status = $2; ended = 1; next }
    /No such file or directory/ { vanished++; next }
    { bad++; if (first == "") first = $0 }
    END {
        if (!ended) { print "measure: the walk did not finish" > "/dev/stderr"; exit 5 }
        if (bad) { printf "measure: unexpected line from find/stat: %s\n", first > "/dev/stderr"; exit 5 }
        if (status != 0 && !vanished) { printf "measure: find exited %d\n", status > "/dev/stderr"; exit 5 }
        printf "fs_used_bytes=%s\ntree_bytes=%.0f\nblobs=%d\nvanished=%d\n", fs_used, bytes, blobs, vanished
    }'
