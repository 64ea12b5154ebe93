# Print small blobs (manifests, image configs) of a filesystem-driver storage, one line each.
# shellcheck shell=sh
# $1: the storage root; stdin: hex sha256 digests, one a line.
# Prints "<hex><TAB><content with its line breaks removed>" for each blob that exists
# (JSON needs no line breaks, so removing them keeps it valid).
cd "$1/docker/registry/v2/blobs/sha256" 2>/dev/null || exit 0
awk '/^[0-9a-f]+$/ { f = substr($0, 1, 2) "/" $0 "/data"; c = ""; ok = 0
  while ((getline l < f) > 0) { c = c l; ok = 1 }
  close(f); if (ok) print $0 "\t" c }'
