# include: common
# shellcheck shell=sh
# gc_stop.sh d=DIR run=ID: stop this run's GC (the window stays; restore.sh follows), e.g. before caches are
# purged after a GC that ran past max_window. Exit 36 when it cannot be stopped, 50 when the lock is not ours.
# shellcheck disable=SC2034  # variables here are read by the functions of common.sh
trap '' PIPE HUP
D='' RUN=''
take_args "d=D run=RUN" "$@"
lock_ours || { say "lock_lost=yes"; exit 50; }
CFG='' REAL='' URL='' MODE='' SERVICE=: ALREADY_RO=no CA='' PROBE='' GC_STOP=''
read_params || true   # GC_STOP: how a GC run inside a container is ended there
stop_gc || { say "gc_still_running=$GC_PID"; exit 36; }
exit 0
