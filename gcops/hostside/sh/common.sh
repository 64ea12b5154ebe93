# shellcheck shell=sh disable=SC2034  # variables set here are read by the scripts that include it
# Functions shared by gcops host scripts. A script whose first line is
# "# include: common" is sent with this text in front of it
# (gcops.hostside.scripts). Definitions only: nothing here runs by itself, and
# a second inclusion (through another include) defines nothing again.
# Globals the callers set: D (state dir), RUN, URL, PROBE, CA (may be empty).
if [ -z "${GCOPS_COMMON_SH:-}" ]; then
GCOPS_COMMON_SH=1

NL='
'
# say TEXT: a result line for gcops; gcops may be gone (closed pipe), so never fatal.
say() { printf '%s\n' "$*" 2>/dev/null || true; }
# tell TEXT: like say, but fails when nobody reads any more (gcops killed, SSH dropped).
tell() { printf '%s\n' "$*" 2>/dev/null; }
now() { t=$(date +%s.%N 2>/dev/null); case "$t" in *N*|'') date +%s ;; *) printf '%s\n' "$t" ;; esac; }
find_curl() {
  CURL=$(command -v curl 2>/dev/null) || CURL=
  if [ -z "$CURL" ] && [ -x /opt/gitlab/embedded/bin/curl ]; then CURL=/opt/gitlab/embedded/bin/curl; fi
}
# http CURL-ARGS...: sets HTTP (the status, or 000) and CURL_RC (curl's exit code: 60 = certificate).
http() {
  HTTP=000; CURL_RC=127
  [ -n "${CURL:-}" ] || return 0
  if [ -n "${CA:-}" ]; then
    HTTP=$("$CURL" -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$CA" "$@" 2>/dev/null); CURL_RC=$?
  else
    HTTP=$("$CURL" -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null); CURL_RC=$?
  fi
  [ -n "$HTTP" ] || HTTP=000
}
read_probe() { http "$URL/v2/"; }
# A manifest PUT with an invalid body: 405 read-only, 400 writable; it never stores anything.
write_probe() {
  http -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary '{}' "$URL$PROBE"
}
answering() { read_probe; case "$HTTP" in 200|401) return 0 ;; *) return 1 ;; esac; }
wait_up() {
  end=$(( $(date +%s) + $1 ))
  until answering; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.05; done
}
wait_down() {
  end=$(( $(date +%s) + $1 ))
  while answering; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.05; done
}
alive() { st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; }
sha_of() { sha256sum < "$1" 2>/dev/null | cut -d ' ' -f 1; }
# put_text FILE TEXT: write TEXT to FILE through a temporary file, read back and compared, then renamed.
put_text() {
  rm -f "$1.gcops-tmp"
  if printf '%s' "$2" > "$1.gcops-tmp" 2>/dev/null \
     && [ "$(sha_of "$1.gcops-tmp")" = "$(printf '%s' "$2" | sha256sum | cut -d ' ' -f 1)" ] \
     && mv -f "$1.gcops-tmp" "$1" 2>/dev/null; then
    return 0
  fi
  rm -f "$1.gcops-tmp"
  return 1
}
lock_ours() { [ "$(cat "$D/lock/run_id" 2>/dev/null)" = "$RUN" ]; }
# unlock: remove the lock while it is still this run's; a restore can take long, and meanwhile the lock may
# have passed to another run (recovered as abandoned, then taken): that run's lock is never removed.
unlock() { if lock_ours; then rm -rf "$D/lock"; fi; }
# kv_assign "key=VAR..." KEY=VALUE: VALUE into the variable VAR that the spec names for KEY, as data
# (never run: only VAR, from the calling script's own spec, reaches eval). Fails for a key not in the spec.
kv_assign() {
  _key=${2%%=*} _var=
  case "$2" in *=*) for _s in $1; do [ "${_s%%=*}" = "$_key" ] && _var=${_s#*=}; done ;; esac
  [ -n "$_var" ] || return 1
  eval "$_var=\${2#*=}"
}
# take_args "key=VAR..." ARG...: a script's key=value arguments, each into its variable; any other
# argument: bad_argument=<key>, exit 2 (nothing done).
take_args() {
  _spec=$1; shift
  for _arg in "$@"; do kv_assign "$_spec" "$_arg" || { say "bad_argument=${_arg%%=*}"; exit 2; }; done
}
# read_params: the run's parameters from "$D/params" (one key=value a line, written by enter.sh; read as
# data, never run; unknown keys are skipped).
read_params() {
  [ -r "$D/params" ] || return 1
  while IFS= read -r line || [ -n "$line" ]; do
    kv_assign "cfg=CFG real=REAL url=URL run=RUN mode=MODE service=SERVICE already_ro=ALREADY_RO ca=CA probe=PROBE gc_stop=GC_STOP" \
      "$line" || :
  done < "$D/params"
  [ -n "${REAL:-}" ] && [ -n "${RUN:-}" ] && [ -n "${MODE:-}" ]
}
# registry_procs: "pid:start-ticks" of the processes serving $CFG (or $REAL) in this host's namespaces.
registry_procs() {
  mynet=$(readlink /proc/self/ns/net 2>/dev/null); mymnt=$(readlink /proc/self/ns/mnt 2>/dev/null)
  # one grep narrows the candidates (GNU grep matches across the NULs of cmdline; where a grep cannot,
  # every process is looked at)
  cands=$(grep -l -F -e "$CFG" -e "${REAL:-$CFG}" /proc/[0-9]*/cmdline 2>/dev/null) || cands=''
  [ -n "$cands" ] || cands=$(echo /proc/[0-9]*/cmdline)
  for f in $cands; do
    p=${f%/cmdline}
    [ "$(readlink "$p/ns/net" 2>/dev/null)" = "$mynet" ] || continue
    [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mymnt" ] || continue
    args=$(tr '\0' ' ' < "$f" 2>/dev/null) || continue
    case " $args" in *" $CFG "*|*" ${REAL:-$CFG} "*) ;; *) continue ;; esac
    case "$args" in *garbage-collect*|*gcops-*) continue ;; *serve*) ;; *) continue ;; esac
    printf '%s:%s\n' "${p#/proc/}" "$(sed 's/.*) //' "$p/stat" 2>/dev/null | cut -d ' ' -f 20)"
  done | sort
}
# stop_gc: stop this run's GC (its whole process group, recorded in $D/gc.pid by gc.sh): SIGTERM, SIGKILL
# one second later (the window must end by max_window; a GC killed mid-sweep only leaves garbage for the
# next run); fails when it cannot be stopped. Prints gc_stopped= when there was one to stop. A GC that runs
# where its group's end does not reach (by `exec` in a container) is then ended there too, by the run's
# GC_STOP command.
stop_gc() {
  GC_PID=$(cat "$D/gc.pid" 2>/dev/null)
  case "$GC_PID" in ''|*[!0-9]*) return 0 ;; esac
  kill -0 -"$GC_PID" 2>/dev/null || return 0
  tr '\0' ' ' < "/proc/$GC_PID/cmdline" 2>/dev/null | grep -q gcops-gc || return 0
  kill -TERM -"$GC_PID" 2>/dev/null; n=0
  while kill -0 -"$GC_PID" 2>/dev/null && [ "$n" -lt 300 ]; do
    n=$((n + 1)); [ "$n" -eq 10 ] && kill -KILL -"$GC_PID" 2>/dev/null; sleep 0.1
  done
  kill -0 -"$GC_PID" 2>/dev/null && return 1
  say "gc_stopped=$GC_PID"
  if [ -n "${GC_STOP:-}" ]; then sh -c "$GC_STOP" </dev/null >/dev/null 2>&1 && say "gc_stopped_inside=yes"; fi
  return 0
}
fi
