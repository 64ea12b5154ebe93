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
if [ -x "$REG" ]; then say "gc_binary=yes"; else say "gc_binary=no"; fi
if command -v setsid >/dev/null 2>&1; then say "setsid=yes"; else say "setsid=no"; fi
read_probe; say "registry_http=$HTTP"; say "curl_rc=$CURL_RC"
[ -d "$D/lock" ] && say "lock=$(cat "$D/lock/run_id" 2>/dev/null) $(cat "$D/deadline" 2>/dev/null)"
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
