# Which blob digests (one "<algorithm>:<hex>" per line on stdin) have no data in the
# shellcheck shell=sh
# filesystem storage under "$1"? Prints missing=<digest> for each; ignores malformed lines.
R=$1
[ -d "$R/docker/registry/v2" ] || { echo "gcops: no registry storage under $R" >&2; exit 10; }
while IFS= read -r d; do
  case "$d" in
    *:*) ;;
    *) continue ;;
  esac
  case "$d" in
    *[!a-z0-9:]*|:*|*:) continue ;;
  esac
  alg=${d%%:*}
  hex=${d#*:}
  rest=${hex#??}
  pre=${hex%"$rest"}
  [ -e "$R/docker/registry/v2/blobs/$alg/$pre/$hex/data" ] || echo "missing=$d"
done
exit 0
