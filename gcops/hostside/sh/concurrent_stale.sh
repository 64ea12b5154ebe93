# include: concurrent_common
# shellcheck shell=sh
# gcops recover: remove what interrupted --mode concurrent runs left (see remove_stale): a run
# killed after its window leaves the swept blobs in its trash, beside docker/, taking room.
#   $1 storage root   $2 gcops' state dir on the host
# Prints removed=<run> for each, then stale_done=yes.
set -u
[ -d "$2" ] && [ -d "$1" ] && remove_stale "$1" "$2"
echo "stale_done=yes"
