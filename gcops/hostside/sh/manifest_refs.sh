# Print every sha256 digest each manifest named on stdin refers to: "<hex> <ref-hex> <ref-hex> ...".
# shellcheck shell=sh
# $1: the storage root; stdin: hex digests of manifests, one a line (checked by gcops).
cd "$1/docker/registry/v2/blobs/sha256" 2>/dev/null || exit 0
awk '{ f = substr($0, 1, 2) "/" $0 "/data"; c = ""
       while ((getline l < f) > 0) c = c l
       close(f); out = $0
       while (match(c, /sha256:[0-9a-f]+/)) { out = out " " substr(c, RSTART + 7, RLENGTH - 7); c = substr(c, RSTART + RLENGTH) }
       print out }'
