# Inside the read-only window: remove tags that still point where the plan saw them.
# shellcheck shell=sh
# $1: the storage root; stdin: "<repository><TAB><tag><TAB><hex digest>" lines (names checked by
# gcops: no white space, no quotes, no "..").
# Only the tag's own directory (_manifests/tags/<tag>) is removed, never the manifest's
# revision link, so another tag on the same digest is untouched. A tag whose current
# link now names another digest (pushed since the plan) is left alone.
# Prints "<outcome><TAB><repository><TAB><tag>" per line, outcome deleted, changed, gone or failed.
# The links are read with the shell's own `read` and the due directories removed by one
# `rm` (xargs): no process per tag, the window stays short.
cd "$1/docker/registry/v2/repositories" || exit 1
due=$(mktemp) || exit 1
trap 'rm -f "$due"' EXIT
tab=$(printf '\t')
while IFS="$tab" read -r repo tag hex; do
  dir="$repo/_manifests/tags/$tag"
  current=""
  if [ ! -f "$dir/current/link" ]; then
    printf 'gone\t%s\t%s\n' "$repo" "$tag"
    continue
  fi
  IFS= read -r current < "$dir/current/link" || :
  if [ "$current" != "sha256:$hex" ]; then
    printf 'changed\t%s\t%s\n' "$repo" "$tag"
  else
    printf '%s\t%s\n' "$repo" "$tag" >> "$due"
  fi
done
awk -F '\t' '{ print $1 "/_manifests/tags/" $2 }' "$due" | xargs rm -rf --
while IFS="$tab" read -r repo tag; do
  if [ -e "$repo/_manifests/tags/$tag" ]; then
    printf 'failed\t%s\t%s\n' "$repo" "$tag"
  else
    printf 'deleted\t%s\t%s\n' "$repo" "$tag"
  fi
done < "$due"
