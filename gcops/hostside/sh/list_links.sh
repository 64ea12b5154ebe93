# List the manifest links of a filesystem-driver storage: "<path><TAB><link content>" per link.
# shellcheck shell=sh
# $1: the storage root; $2: "all" (revision links and tag current links) or "tags" (tag current links
# only); $3...: only under these repositories (names checked by gcops; missing ones are skipped),
# else every repository. Read by gcops.registry.untagged (--delete-untagged, retention).
root=$1 what=$2
shift 2
cd "$root/docker/registry/v2" 2>/dev/null || exit 0
if [ "$#" -eq 0 ]; then
  set -- repositories
else
  for repo; do shift; set -- "$@" "repositories/$repo"; done
fi
if [ "$what" = tags ]; then
  find "$@" -path '*/_manifests/tags/*/current/link' -type f
else
  find "$@" \( -path '*/_manifests/revisions/sha256/*/link' -o -path '*/_manifests/tags/*/current/link' \) -type f
fi | awk '{ d = ""; getline d < $0; close($0); print $0 "\t" d }'
