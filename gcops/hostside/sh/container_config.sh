# shellcheck shell=sh
# container_config.sh cfg=HOSTFILE [copy=COMMAND]: print the registry config the engine host holds for
# a container. With copy=, the config lives in the container's own layer: COMMAND (built by gcops, its
# values quoted) copies it out to HOSTFILE.gcops-out, which then replaces HOSTFILE (the file gcops
# edits, restores and copies back in), unless an earlier run's marker says HOSTFILE is still that
# run's to restore. Exit 8 when the copy fails.
CFG='' COPY=''
for kv in "$@"; do
  case "$kv" in
    cfg=*) CFG=${kv#cfg=} ;; copy=*) COPY=${kv#copy=} ;;
    *) echo "bad argument ${kv%%=*}" >&2; exit 2 ;;
  esac
done
dir=$(dirname "$CFG")
if [ -n "$COPY" ] && [ ! -e "$dir/.gcops/marker" ]; then
  { mkdir -p "$dir" && chmod 700 "$dir"; } 2>/dev/null || { echo "cannot create $dir" >&2; exit 8; }
  rm -f "$CFG.gcops-out"
  out=$(sh -c "$COPY" 2>&1 </dev/null) || { echo "copying the config out of the container: $out" >&2; exit 8; }
  mv -f "$CFG.gcops-out" "$CFG" || exit 8
fi
cat "$CFG"
