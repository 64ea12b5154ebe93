# include: common
# shellcheck shell=sh
# preflight.sh cfg=PATH url=URL registry=BINARY ca=FILE probe=PATH: facts about one registry host as
# key=value lines, then the config itself in base64 after a separator line. Changes nothing.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
CFG='' URL='' REG='' CA='' PROBE=''
take_args "cfg=CFG url=URL registry=REG ca=CA probe=PROBE" "$@"
D="$(dirname "$CFG")/.gcops"
find_curl
say "curl=${CURL:-}"
# The GC command runs through sh, so the binary is found as sh finds it: a name with a slash is a path,
# a bare name is looked up in this PATH (the one the GC gets: sudo's secure_path under sudo).
case "$REG" in
  */*) found=$REG ;;
  *) found=$(command -v "$REG" 2>/dev/null) || found='' ;;
esac
case "$found" in
  */*) if [ -f "$found" ] && [ -x "$found" ]; then say "gc_binary=yes"; else say "gc_binary=no"; fi ;;
  *) say "gc_binary=no" ;;   # not found, or a shell builtin/function of that name: not a registry binary
esac
say "gc_binary_path=$found"
say "path=$PATH"
if command -v setsid >/dev/null 2>&1; then say "setsid=yes"; else say "setsid=no"; fi
read_probe; say "registry_http=$HTTP"; say "curl_rc=$CURL_RC"
if [ -d "$D/lock" ]; then
  # The deadline file is this lock's only once its holder wrote it, after taking the lock (enter.sh): an
  # older one is an earlier run's, and a lock just taken is not abandoned because that one has passed.
  dl='' taken=$(stat -c %Y "$D/lock/run_id" 2>/dev/null) written=$(stat -c %Y "$D/deadline" 2>/dev/null)
  if [ -n "$taken" ] && [ -n "$written" ] && [ "$written" -ge "$taken" ]; then dl=$(cat "$D/deadline" 2>/dev/null); fi
  say "lock=$(cat "$D/lock/run_id" 2>/dev/null) $dl"
  say "lock_since=$(stat -c %Y "$D/lock" 2>/dev/null)"
fi
[ -d "$D/lock" ] && say "lock_owner=$(head -n 1 "$D/lock/owner" 2>/dev/null)"
[ -e "$D/marker" ] && say "marker=$(head -n 1 "$D/marker")"
[ -f "$D/restore.sh" ] && say "restore_script=yes"
[ -f "$D/original" ] && say "original=yes"
say "now=$(date +%s)"
dir=$(dirname "$CFG")
if [ -w "$dir" ]; then say "config_dir_writable=yes"; else say "config_dir_writable=no"; fi
if [ -L "$CFG" ]; then
  say "config_symlink=yes"
  real=$(readlink -f "$CFG" 2>/dev/null) && say "config_target=$real"
  [ -n "${real:-}" ] && [ -w "$(dirname "$real")" ] || say "config_target_dir_writable=no"
fi
say "config_fs_avail_kib=$(df -P -k "$dir" 2>/dev/null | awk 'NR == 2 {print $4}')"
if [ -r "$CFG" ]; then
  say "config_sha256=$(sha_of "$CFG")"
  say "config_bytes=$(wc -c < "$CFG" | tr -d ' ')"
  say "--- config (base64) ---"
  base64 < "$CFG"
else
  say "config_readable=no"
fi
