# include: common
# shellcheck shell=sh
# check.sh url=URL probe=PATH ca=FILE mode=readonly|stop: does the window hold on this node?
# Prints write_probe= (the status a manifest PUT gets), curl_rc=, read_probe= (GET /v2/); always exit 0:
# gcops judges the figures (a 401 needs credentials or proof of a restart).
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
URL='' PROBE='' CA='' MODE=readonly
for kv in "$@"; do
  case "$kv" in
    url=*) URL=${kv#url=} ;; probe=*) PROBE=${kv#probe=} ;; ca=*) CA=${kv#ca=} ;; mode=*) MODE=${kv#mode=} ;;
    *) say "bad_argument=${kv%%=*}"; exit 2 ;;
  esac
done
find_curl
if [ "$MODE" = readonly ]; then write_probe; say "write_probe=$HTTP"; say "curl_rc=$CURL_RC"; fi
read_probe; say "read_probe=$HTTP"
exit 0
