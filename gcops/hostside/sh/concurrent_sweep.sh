# gcops --mode concurrent, step 3 (inside the verified write-refused window): delete every
# candidate the delta does not protect, the way the registry's own sweep removes a blob
# (distribution's vacuum.RemoveBlob deletes the directory blobs/sha256/<xx>/<hex>).
#   $1 storage root   $2 work dir (holds candidates and protected)
# The digests deleted are left in "$2/swept" (for the blob descriptor cache purge).
# Prints candidates, spared, swept.
set -u
ROOT=$1 W=$2
BLOBS="$ROOT/docker/registry/v2/blobs/sha256"
[ -f "$W/candidates" ] || { echo "candidates_missing=$W/candidates"; exit 40; }
[ -f "$W/protected" ] || { echo "protected_missing=$W/protected"; exit 41; }
cd "$BLOBS" || { echo "blobs_missing=$BLOBS"; exit 42; }
awk -v SWEPT="$W/swept" 'NR == FNR { p[$0] = 1; next }
{ total++ }
$0 in p { spared++; next }
/^sha256:[0-9a-f]+$/ && length($0) == 71 && !($0 in seen) {
  seen[$0] = 1; hex = substr($0, 8); print substr(hex, 1, 2) "/" hex; print $0 > SWEPT; n++
}
END { printf "candidates=%d\nspared=%d\n", total, spared > "/dev/stderr" }' "$W/protected" "$W/candidates" \
  > "$W/sweep" 2> "$W/sweep.counts" || { echo "sweep_list_failed=yes"; exit 43; }
[ -f "$W/swept" ] || : > "$W/swept"
cat "$W/sweep.counts"
if [ -s "$W/sweep" ]; then
  xargs rm -rf -- < "$W/sweep" || { echo "sweep_failed=yes"; exit 44; }
fi
echo "swept=$(wc -l < "$W/sweep" | tr -d ' ')"
