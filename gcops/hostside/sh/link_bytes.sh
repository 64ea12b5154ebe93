# Sum the allocated bytes (du -sB1 semantics) of the manifest links safe --delete-untagged
# shellcheck shell=sh
# would remove: for each "repo<TAB>hex" line on stdin, the revision link directory and every
# tag index link to it, under the storage root "$1". Prints one number. Paths already gone
# count 0; a malformed line, a missing tool or a failing command exits non-zero (never a 0).
set -u
LC_ALL=C; export LC_ALL  # error texts are matched below
root=${1:?link_bytes.sh: no storage root given}
for tool in find stat awk; do
    command -v "$tool" >/dev/null 2>&1 || { echo "link_bytes: '$tool' not found on the host" >&2; exit 3; }
done
cd "$root/docker/registry/v2" || { echo "link_bytes: cannot enter $root/docker/registry/v2" >&2; exit 3; }
tab=$(printf '\t')
{
    st=0
    while IFS="$tab" read -r repo hex; do
        case $hex in '' | *[!0-9a-f]*) echo "gcops-bad-line digest"; st=6; continue ;; esac
        case $repo in '' | /* | *..* ) echo "gcops-bad-line repository"; st=6; continue ;; esac
        for p in "repositories/$repo/_manifests/revisions/sha256/$hex" \
                 "repositories/$repo"/_manifests/tags/*/index/sha256/"$hex"; do
            [ -e "$p" ] || continue
            find "$p" -exec stat -c '%b %B %n' {} + || st=$?
        done
    done
    echo "gcops-find-exit $st"
} 2>&1 | awk '
    /^[0-9]+ [0-9]+ repositories\// { bytes += $1 * $2; next }
    /^gcops-find-exit [0-9]+$/ { status = $2; ended = 1; next }
    /No such file or directory/ { missing++; next }
    { bad++; if (first == "") first = $0 }
    END {
        if (!ended || bad) { printf "link_bytes: unexpected line: %s\n", first > "/dev/stderr"; exit 5 }
        if (status != 0 && !missing) { printf "link_bytes: find exited %d\n", status > "/dev/stderr"; exit 5 }
        printf "%.0f\n", bytes
    }'
