# include: common
# shellcheck shell=sh
# container_find.sh engine=NAME name=CONTAINER | project=P service=S: on the engine host, find the
# container running the registry and print the engine's `container inspect` of it (a JSON array) after
# a separator line. Changes nothing. Prints engine_path=, docker_host=, container_host= (the endpoint
# the engine commands use here), ids= (every container matching). Exit 3 the engine command is
# missing, 4 the engine does not answer (engine_down= its last line), 6 no container matches,
# 7 inspect failed (inspect_error=).
ENGINE='' NAME='' PROJECT='' SERVICE=''
for kv in "$@"; do
  case "$kv" in
    engine=*) ENGINE=${kv#engine=} ;; name=*) NAME=${kv#name=} ;;
    project=*) PROJECT=${kv#project=} ;; service=*) SERVICE=${kv#service=} ;;
    *) say "bad_argument=${kv%%=*}"; exit 2 ;;
  esac
done
path=$(command -v "$ENGINE" 2>/dev/null) || { say "engine_missing=$ENGINE"; exit 3; }
say "engine_path=$path"
say "docker_host=${DOCKER_HOST:-}"
say "container_host=${CONTAINER_HOST:-}"
# Whether the engine answers is asked only when it failed (`version` costs a round trip to the daemon).
engine_down() {
  if ! v=$("$ENGINE" version 2>&1); then say "engine_down=$(printf '%s\n' "$v" | grep -v '^ *$' | tail -n 1)"; exit 4; fi
}
if [ -n "$NAME" ]; then
  ids=$NAME
else
  ids=$("$ENGINE" ps -a -q --no-trunc --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$SERVICE" 2>&1) || { engine_down; say "engine_down=$ids"; exit 4; }
  ids=$(printf '%s\n' "$ids" | sort -u | tr '\n' ' ')
fi
say "ids=$ids"
[ -n "${ids% }" ] || exit 6
# shellcheck disable=SC2086  # one word per container id
out=$("$ENGINE" container inspect $ids 2>&1) || {
  engine_down; say "inspect_error=$(printf '%s\n' "$out" | grep -v '^ *$' | tail -n 1)"; exit 7
}
say "--- inspect ---"
printf '%s\n' "$out"
