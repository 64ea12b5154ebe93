# Print the image indexes / manifest lists among the manifests named on stdin: "<hex><TAB><json>".
# shellcheck shell=sh
# $1: the storage root; stdin: hex digests, one a line (checked by gcops).
cd "$1/docker/registry/v2/blobs/sha256" 2>/dev/null || exit 0
awk '{ f = substr($0, 1, 2) "/" $0 "/data"; c = ""
       while ((getline l < f) > 0) c = c l
       close(f)
       if (index(c, "\"manifests\"") > 0) print $0 "\t" c }'
