# List the tags of a filesystem-driver storage with what each points to and when it was pushed.
# shellcheck shell=sh
# $1: the storage root; $2: "-" to list only the repositories named on stdin (one a line;
# names checked by gcops), else every repository.
# Prints "now=<host epoch>", then one line per tag:
#   <path of its current/link><TAB><link content><TAB><mtime of the link, epoch>
# The link's mtime is the storage's own record of the tag's last push.
# (stat -c %Y exists in GNU coreutils and BusyBox; no find -printf.)
printf 'now=%s\n' "$(date +%s)"
cd "$1/docker/registry/v2" 2>/dev/null || exit 0
[ -d repositories ] || exit 0
dirs=$(mktemp) || exit 1
trap 'rm -f "$dirs"' EXIT
if [ "${2:-}" = "-" ]; then
  while IFS= read -r repo; do
    [ -d "repositories/$repo" ] && printf 'repositories/%s\n' "$repo"
  done > "$dirs"
else
  echo repositories > "$dirs"
fi
# without a directory find would list "."
[ -s "$dirs" ] || exit 0
# shellcheck disable=SC2016
xargs sh -c 'find "$@" -path "*/_manifests/tags/*/current/link" -type f -exec stat -c "%Y %n" {} +' list-tags \
  < "$dirs" |
  awk '{ p = substr($0, index($0, " ") + 1); d = ""; getline d < p; close(p); print p "\t" d "\t" $1 }'
