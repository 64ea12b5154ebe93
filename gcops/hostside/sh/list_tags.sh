# List every tag of a filesystem-driver storage with what it points to and when it was pushed.
# $1: the storage root. Prints "now=<host epoch>", then one line per tag:
#   <path of its current/link><TAB><link content><TAB><mtime of the link, epoch>
# The link's mtime is the storage's own record of the tag's last push.
# (stat -c %Y exists in GNU coreutils and BusyBox; no find -printf.)
printf 'now=%s\n' "$(date +%s)"
cd "$1/docker/registry/v2" 2>/dev/null || exit 0
[ -d repositories ] || exit 0
find repositories -path '*/_manifests/tags/*/current/link' -type f -exec stat -c '%Y %n' {} + |
  awk '{ p = substr($0, index($0, " ") + 1); d = ""; getline d < p; close(p); print p "\t" d "\t" $1 }'
