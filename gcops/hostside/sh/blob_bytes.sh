# Sum the allocated bytes (du -sB1 semantics) of the blob directories named on
# shellcheck shell=sh
# stdin, one path per line relative to the storage root "$1"
# (docker/registry/v2/blobs/sha256/xx/<hex>). Prints one number.
# A directory that no longer exists counts 0 (already gone); a malformed path,
# a missing tool or a failing command exits non-zero with a line on stderr.
set -u
LC_ALL=C; export LC_ALL  # error texts are matched below
root=${1:?blob_bytes.sh: no storage root given}
for tool in find stat awk xargs; do
    command -v "$tool" >/dev/null 2>&1 || { echo "blob_bytes: '$tool' not found on the host" >&2; exit 3; }
done
cd "$root" || { echo "blob_bytes: cannot enter $root" >&2; exit 3; }
# Only well-formed blob paths reach find (no blanks or quotes in them, so xargs
# is safe); the validating awk's status reaches the summing awk on fd 3.
{
    {
        awk '/^docker\/registry\/v2\/blobs\/sha256\/[0-9a-f][0-9a-f]\/[0-9a-f]+$/ { print; next }
            NF { printf "blob_bytes: not a blob path: %s\n", $0 > "/dev/stderr"; bad = 1 }
            END { exit bad }'
        echo "gcops-input-exit $?" >&3
    } | xargs sh -c '[ "$#" -eq 0 ] || exec find "$@" -exec stat -c "%b %B %n" {} +' gcops-find 2>&1
    echo "gcops-find-exit $?"
} 3>&1 | awk '
    /^[0-9]+ [0-9]+ docker\// { bytes += $1 * $2; next }
    /^gcops-input-exit [0-9]+$/ { input = $2; next }
    /^gcops-find-exit [0-9]+$/ { status = $2; ended = 1; next }
    /No such file or directory/ { missing++; next }
    { bad++; if (first == "") first = $0 }
    END {
        if (input != 0) exit 6
        if (!ended || bad) { printf "blob_bytes: unexpected line from find/stat: %s\n", first > "/dev/stderr"; exit 5 }
        if (status != 0 && !missing) { printf "blob_bytes: find exited %d\n", status > "/dev/stderr"; exit 5 }
        printf "%.0f\n", bytes
    }'
