# On-disk bytes of tag directories (what delete_tags.sh would remove), summed.
# $1: the storage root; stdin: "<repository><TAB><tag>" lines. Prints "bytes=<n>".
# du -k (KiB, as allocated) works in GNU and BusyBox; -B1 does not.
cd "$1/docker/registry/v2/repositories" || exit 1
tab=$(printf '\t')
while IFS="$tab" read -r repo tag; do
  [ -d "$repo/_manifests/tags/$tag" ] && du -sk "$repo/_manifests/tags/$tag"
done | awk '{ s += $1 } END { printf "bytes=%.0f\n", s * 1024 }'
