# Inside the read-only window: remove tags that still point where the plan saw them.
# $1: the storage root; stdin: "<repository><TAB><tag><TAB><hex digest>" lines.
# Only the tag's own directory (_manifests/tags/<tag>) is removed, never the manifest's
# revision link, so another tag on the same digest is untouched. A tag whose current
# link now names another digest (pushed since the plan) is left alone.
# Prints "<outcome><TAB><repository><TAB><tag>" per line, outcome deleted, changed, gone or failed.
cd "$1/docker/registry/v2/repositories" || exit 1
tab=$(printf '\t')
while IFS="$tab" read -r repo tag hex; do
  dir="$repo/_manifests/tags/$tag"
  if [ ! -f "$dir/current/link" ]; then
    outcome=gone
  elif [ "$(cat "$dir/current/link")" != "sha256:$hex" ]; then
    outcome=changed
  elif rm -rf -- "$dir"; then
    outcome=deleted
  else
    outcome=failed
  fi
  printf '%s\t%s\t%s\n' "$outcome" "$repo" "$tag"
done
