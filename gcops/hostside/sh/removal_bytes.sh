# On-disk bytes of what retention (and --delete-untagged) would remove, each path counted once.
# shellcheck shell=sh
# $1: the storage root; stdin lines:
#   tag<TAB><repository><TAB><tag>        the tag's directory (_manifests/tags/<tag>)
#   revision<TAB><repository><TAB><hex>   the revision link, and every tag history link to it
# A path inside another listed one (a deleted tag's own history link) is not counted again:
# after a byte-wise sort a directory's contents follow it directly. Prints "bytes=<n>".
# du -k (KiB, as allocated) works in GNU and BusyBox; -B1 does not.
cd "$1/docker/registry/v2/repositories" || exit 1
paths=$(mktemp) || exit 1
trap 'rm -f "$paths"' EXIT
tab=$(printf '\t')
while IFS="$tab" read -r kind repo name; do
  case $kind in
    tag) set -- "$repo/_manifests/tags/$name" ;;
    revision) set -- "$repo/_manifests/revisions/sha256/$name" "$repo"/_manifests/tags/*/index/sha256/"$name" ;;
    *) set -- ;;
  esac
  for p in "$@"; do
    [ -e "$p" ] && printf '%s/\n' "$p"
  done
done | LC_ALL=C sort -u | awk 'last != "" && index($0, last) == 1 { next } { last = $0; print }' > "$paths"
# one du for all (names checked by gcops: no white space); without paths du would measure "."
if [ -s "$paths" ]; then
  xargs du -sk < "$paths" | awk '{ s += $1 } END { printf "bytes=%.0f\n", s * 1024 }'
else
  echo "bytes=0"
fi
