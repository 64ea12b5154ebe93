# Inside the read-only window: unlink manifests no tag reaches any more, the way
# shellcheck shell=sh
# `garbage-collect -m` would for them (gcops never passes -m; see registry/untagged.py).
# $1: the storage root; stdin: "<repository><TAB><hex digest>" lines (names checked by gcops).
# Removes each revision link directory and every tag history link to it, with one `rm`
# (xargs) for all of them. Prints "unlinked=<n>": revision links that are gone afterwards.
cd "$1/docker/registry/v2/repositories" || exit 1
listed=$(mktemp) || exit 1
trap 'rm -f "$listed"' EXIT
tab=$(printf '\t')
while IFS="$tab" read -r repo hex; do
  [ -d "$repo/_manifests/revisions/sha256/$hex" ] || continue
  printf '%s\t%s\n' "$repo" "$hex" >> "$listed"
  for p in "$repo/_manifests/revisions/sha256/$hex" "$repo"/_manifests/tags/*/index/sha256/"$hex"; do
    [ -e "$p" ] && printf '%s\n' "$p"
  done
done | xargs rm -rf --
n=0
while IFS="$tab" read -r repo hex; do
  [ -e "$repo/_manifests/revisions/sha256/$hex" ] || n=$((n + 1))
done < "$listed"
printf 'unlinked=%s\n' "$n"
