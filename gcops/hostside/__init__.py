"""Shell scripts gcops runs on a registry host, built from data with every value quoted.

Everything that must survive gcops itself lives on the host, in a directory
beside the registry config (`<config dir>/.gcops`, so it follows the config
and works on hosts with or without systemd):

    lock/            mkdir-atomic lock; lock/run_id names the holder
    original         the config bytes as they were (cp -p: mode and owner too)
    marker           "this run changed the registry" (run id, mode, ...)
    deadline         epoch seconds after which the watchdog restores
    restore.sh       the one restore procedure: gcops, the watchdog and
                     `gcops recover` all run this same script
    watchdog.sh      detached loop that runs restore.sh past the deadline
    gc.pid           pid of this run's GC, so a restore can stop it first

Each step of a run is one round trip: `enter` (lock, intent, watchdog,
read-only or stop, wait until answering), `gc` (verify, then exec the GC),
`leave` (verify read-only survived, restore.sh, unlock).
"""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

GRACE_SECONDS = 10          # the watchdog fires this long after max_window
READY_TIMEOUT = 60          # seconds a restarted registry may take to answer
PROBE_PATH = "/v2/gcops-probe/manifests/gcops-probe"

EXIT_LOCKED = 75
EXIT_LEFTOVER = 76
EXIT_CONFIG_CHANGED = 77
EXIT_NOT_READ_ONLY = 90
EXIT_NOT_ANSWERING = 91
EXIT_STILL_ANSWERING = 92


def q(value: str) -> str:
    return shlex.quote(str(value))


def replace_config_from_stdin(cfg: str) -> str:
    """Shell: write stdin to `cfg` (a quoted shell word) atomically, keeping its mode and owner."""
    tmp = f"{cfg}.gcops-new"
    return (f"cat > {tmp} && chmod --reference={cfg} {tmp} 2>/dev/null; chown --reference={cfg} {tmp} 2>/dev/null; "
            f"mv -f {tmp} {cfg}")


def host_state_dir(config_path: str) -> str:
    return posixpath.join(posixpath.dirname(config_path) or "/", ".gcops")


@dataclass(frozen=True)
class NodePlan:
    """What the scripts need to know about one registry node and this run."""

    run_id: str
    owner: str                 # who holds the lock: "gcops@<control host> pid <pid>"
    config_path: str
    registry_url: str
    mode: str                  # "readonly" | "stop"
    restart: str               # rendered playbook commands (already quoted)
    stop: str
    start: str
    gc: str                    # full GC command line including flags
    max_window: float
    already_read_only: bool    # the config was read-only before the run

    @property
    def state_dir(self) -> str:
        return host_state_dir(self.config_path)


PRELUDE = r"""
CURL=$(command -v curl 2>/dev/null || { [ -x /opt/gitlab/embedded/bin/curl ] && echo /opt/gitlab/embedded/bin/curl; } || true)
now() { t=$(date +%s.%N 2>/dev/null); case "$t" in *N*|'') date +%s ;; *) echo "$t" ;; esac; }
http_code() { [ -n "$CURL" ] || { echo 000; return; }; "$CURL" -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" 2>/dev/null || true; }
read_probe() { c=$(http_code "$URL/v2/"); echo "${c:-000}"; }
write_probe() { c=$(http_code -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary '{}' "$URL""$PROBE"); echo "${c:-000}"; }
answering() { case "$(read_probe)" in 200|401) return 0 ;; *) return 1 ;; esac; }
wait_up() { end=$(( $(date +%s) + $1 )); until answering; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.05; done; }
alive() { st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; }
wait_down() { end=$(( $(date +%s) + $1 )); while answering; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 0.05; done; }
"""


def _header(plan: NodePlan) -> str:
    return (f"D={q(plan.state_dir)}; CFG={q(plan.config_path)}; URL={q(plan.registry_url.rstrip('/'))}; "
            f"RUN={q(plan.run_id)}; PROBE={q(PROBE_PATH)}\n" + PRELUDE)


def restore_script(plan: NodePlan) -> str:
    """restore.sh: stop this run's GC, put the original bytes back, bring the service back, verify.

    Idempotent and serialised (mkdir mutex), so gcops, the watchdog and
    `gcops recover` may all call it. Exit 0 only when the registry answers with
    the original config; prints `window_end=` and `probe_after=`.
    """
    if plan.mode == "stop":
        service = plan.start
    else:
        service = plan.restart if not plan.already_read_only else ":"
    expect_ro = "yes" if plan.already_read_only else "no"
    return _header(plan) + f"""
WHO="${{1:-gcops}}"
end=$(( $(date +%s) + 300 ))
until mkdir "$D/restoring" 2>/dev/null; do
  holder=$(cat "$D/restoring/pid" 2>/dev/null)
  if [ -n "$holder" ] && ! alive "$holder"; then rm -rf "$D/restoring"; continue; fi
  [ "$(date +%s)" -ge "$end" ] && {{ echo "restore_busy"; exit 33; }}
  sleep 0.2
done
echo $$ > "$D/restoring/pid"
trap 'rm -rf "$D/restoring"' EXIT
if [ ! -e "$D/marker" ]; then echo "already_restored=yes"; exit 0; fi
echo "restore_by=$WHO"
if [ -f "$D/gc.pid" ]; then
  pid=$(cat "$D/gc.pid")
  if [ -n "$pid" ] && grep -q garbage-collect "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null; n=0
    while alive "$pid" && [ "$n" -lt 300 ]; do
      n=$((n + 1)); [ "$n" -eq 100 ] && kill -KILL "$pid" 2>/dev/null; sleep 0.1
    done
    echo "gc_stopped=$pid"
  fi
fi
if ! cmp -s "$D/original" "$CFG"; then
  cp -p "$D/original" "$CFG.gcops-restore" && mv -f "$CFG.gcops-restore" "$CFG" || {{ echo "config_restore_failed"; exit 30; }}
fi
{service} || echo "service_command_failed=$?"
wait_up {READY_TIMEOUT} || {{ echo "not_answering"; exit 31; }}
echo "window_end=$(now)"
cmp -s "$D/original" "$CFG" || {{ echo "config_differs"; exit 32; }}
code=$(write_probe); echo "probe_after=$code"
if [ {q(expect_ro)} = yes ]; then
  [ "$code" = 405 ] || [ "$code" = 401 ] || {{ echo "expected_read_only"; exit 34; }}
else
  [ "$code" != 405 ] || {{ echo "still_read_only"; exit 34; }}
  case "$code" in 5*|000) echo "write_probe_failed"; exit 34 ;; esac
fi
rm -f "$D/marker" "$D/gc.pid"
echo "restored=yes"
"""


def watchdog_script(plan: NodePlan) -> str:
    """watchdog.sh: while this run holds the lock, restore once the deadline passes."""
    return f"""D={q(plan.state_dir)}; RUN={q(plan.run_id)}
while :; do
  [ "$(cat "$D/lock/run_id" 2>/dev/null)" = "$RUN" ] || exit 0
  if [ "$(date +%s)" -ge "$(cat "$D/deadline" 2>/dev/null || echo 0)" ]; then
    echo "$(date -u +%FT%TZ) watchdog $RUN: deadline passed, restoring" >> "$D/watchdog.log"
    if /bin/sh "$D/restore.sh" watchdog >> "$D/watchdog.log" 2>&1; then
      rm -rf "$D/lock"; echo "$(date -u +%FT%TZ) watchdog $RUN: restored" >> "$D/watchdog.log"; exit 0
    fi
    echo $(( $(date +%s) + 30 )) > "$D/deadline"
  fi
  sleep 1
done
"""


def _enter_function(plan: NodePlan, expected_sha256: str, write_config: bool) -> str:
    """gcops_enter: lock, record intent, arm the watchdog, then go read-only (or stop).

    Returns 75 locked, 76 a leftover marker, 77 the config changed since
    preflight (those three change nothing); other non-zero codes mean it may
    have changed the host. Prints `window_start=` and `ready=` (host clock).
    """
    deadline_extra = int(plan.max_window) + GRACE_SECONDS
    if plan.mode == "stop":
        change = f"{plan.stop} || {{ echo service_command_failed; return 41; }}\nwait_down 60 || {{ echo still_answering; return 42; }}"
    elif write_config:
        change = (replace_config_from_stdin('"$CFG"') + " || { echo config_write_failed; return 40; }\n"
                  f"{plan.restart} || echo service_command_failed=$?\n"
                  f"wait_up {READY_TIMEOUT} || {{ echo not_answering; return 43; }}")
    else:
        change = ":"
    marker = f"run_id={plan.run_id}\nmode={plan.mode}\nconfig_written={'yes' if write_config else 'no'}\nowner={plan.owner}\n"
    return f"""
gcops_enter() {{
mkdir -p "$D" && chmod 700 "$D" || return 20
if ! mkdir "$D/lock" 2>/dev/null; then echo "lock_held=$(cat "$D/lock/owner" 2>/dev/null | head -n 1)"; return {EXIT_LOCKED}; fi
printf '%s\\n' "$RUN" > "$D/lock/run_id"
printf '%s\\n' {q(plan.owner)} > "$D/lock/owner"
if [ -e "$D/marker" ]; then echo "leftover=$(head -n 1 "$D/marker")"; rm -rf "$D/lock"; return {EXIT_LEFTOVER}; fi
sum=$(sha256sum < "$CFG" | cut -d ' ' -f 1)
[ "$sum" = {q(expected_sha256)} ] || {{ echo "config_changed=$sum"; rm -rf "$D/lock"; return {EXIT_CONFIG_CHANGED}; }}
cp -p "$CFG" "$D/original.tmp" && mv -f "$D/original.tmp" "$D/original" || {{ rm -rf "$D/lock"; return 21; }}
cat > "$D/restore.sh" <<'GCOPS_RESTORE_EOF'
{restore_script(plan)}
GCOPS_RESTORE_EOF
cat > "$D/watchdog.sh" <<'GCOPS_WATCHDOG_EOF'
{watchdog_script(plan)}
GCOPS_WATCHDOG_EOF
rm -f "$D/gc.pid" "$D"/gc-*.log
echo $(( $(date +%s) + {deadline_extra} )) > "$D/deadline"
printf '%s' {q(marker)} > "$D/marker.tmp" && mv -f "$D/marker.tmp" "$D/marker" || {{ rm -rf "$D/lock"; return 22; }}
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 && \\
   systemd-run --quiet --collect --unit="gcops-watchdog-$(echo "$RUN" | tr -c 'A-Za-z0-9\\n' '-')" /bin/sh "$D/watchdog.sh" >/dev/null 2>&1; then
  echo "watchdog=systemd-run"
elif command -v setsid >/dev/null 2>&1; then
  setsid /bin/sh "$D/watchdog.sh" </dev/null >>"$D/watchdog.log" 2>&1 &
  echo "watchdog=setsid"
else
  nohup /bin/sh "$D/watchdog.sh" </dev/null >>"$D/watchdog.log" 2>&1 &
  echo "watchdog=nohup"
fi
echo "window_start=$(now)"
{change}
echo "ready=$(now)"
}}
"""


def enter_script(plan: NodePlan, expected_sha256: str, write_config: bool) -> str:
    """Enter the window on one node (stdin: the read-only config bytes when `write_config`)."""
    return _header(plan) + _enter_function(plan, expected_sha256, write_config) + "gcops_enter; exit $?\n"


def _leave_function(plan: NodePlan) -> str:
    """gcops_leave: if this run still holds the lock, say whether read-only survived, restore, unlock."""
    check = 'echo "probe_after_gc=$(write_probe)"\n' if plan.mode == "readonly" else ""
    return f"""
gcops_leave() {{
[ "$(cat "$D/lock/run_id" 2>/dev/null)" = "$RUN" ] || {{ echo "not_ours=yes"; return 0; }}
{check}/bin/sh "$D/restore.sh" gcops; rc=$?
if [ "$rc" -eq 0 ]; then rm -rf "$D/lock"; fi
return "$rc"
}}
"""


def window_script(plan: NodePlan, *, enter: bool, expected_sha256: str = "", write_config: bool = False) -> str:
    """The whole window on the GC node in one round trip, run to its end on the host even if gcops goes.

    [enter ->] verify the window holds -> GC with its output to a host file
    (`gc_log`; streaming millions of lines through sshd slows the GC itself) ->
    leave (restore, verify, unlock). Prints key=value lines: enter_exit,
    check_exit, gc_exit, leave_exit, window_start, window_end, probe_after_gc.
    """
    parts = [_header(plan), "trap '' PIPE HUP\n"]
    if enter:
        parts.append(_enter_function(plan, expected_sha256, write_config))
    parts.append(_leave_function(plan))
    parts.append(f"gcops_checks() {{\n{_window_checks(plan, fail='return')}return 0\n}}\n")
    if enter:
        parts.append(f"""gcops_enter; rc=$?
case "$rc" in
  0) ;;
  {EXIT_LOCKED}|{EXIT_LEFTOVER}|{EXIT_CONFIG_CHANGED}) exit "$rc" ;;
  *) echo "enter_exit=$rc"; gcops_leave; echo "leave_exit=$?"; exit 0 ;;
esac
""")
    parts.append(f"""gcops_checks; rc=$?
if [ "$rc" -ne 0 ]; then echo "check_exit=$rc"; gcops_leave; echo "leave_exit=$?"; exit 0; fi
echo "gc_start=$(now)"
{plan.gc} > {q(gc_log(plan))} 2>&1 </dev/null &
echo $! > "$D/gc.pid"
wait $!; rc=$?; echo "gc_end=$(now)"; echo "gc_exit=$rc"
gcops_leave; echo "leave_exit=$?"
exit 0
""")
    return "".join(parts)


def gc_log(plan: NodePlan) -> str:
    return f"{plan.state_dir}/gc-{plan.run_id}.log"


def gc_log_command(plan: NodePlan) -> str:
    """Stream the GC log and remove it (after the window)."""
    return f"cat {q(gc_log(plan))} 2>/dev/null; rm -f {q(gc_log(plan))}"


def _window_checks(plan: NodePlan, fail: str = "exit") -> str:
    """Shell lines that `fail` (exit or return) unless writes are refused and reads answer, or the registry is down."""
    if plan.mode == "stop":
        return f'answering && {{ echo "gcops: registry still answers; not running GC"; {fail} {EXIT_STILL_ANSWERING}; }}\n'
    return (f'code=$(write_probe); echo "gcops: write probe before GC: $code"\n'
            f'case "$code" in 405) ;; 401) echo "gcops: write probe needs credentials" ;; '
            f'*) echo "gcops: registry is NOT read-only (write probe $code); not running GC"; {fail} {EXIT_NOT_READ_ONLY} ;; esac\n'
            f'answering || {{ echo "gcops: registry does not answer reads"; {fail} {EXIT_NOT_ANSWERING}; }}\n')


def window_check_script(plan: NodePlan) -> str:
    """Exit 0 only while the window holds: writes refused (405) and reads answered, or the registry down."""
    return _header(plan) + _window_checks(plan)


def leave_script(plan: NodePlan) -> str:
    """Leave the window on one node: restore.sh, unlock on success (only while this run holds the lock)."""
    return _header(plan) + _leave_function(plan) + "gcops_leave; exit $?\n"


def preflight_script(config_path: str, registry_url: str, registry_binary: str) -> str:
    """One round trip: facts about the host as key=value lines, then the config in base64."""
    return (f"D={q(host_state_dir(config_path))}; CFG={q(config_path)}; URL={q(registry_url.rstrip('/'))}; "
            f"REG={q(registry_binary)}; PROBE={q(PROBE_PATH)}\n" + PRELUDE + r"""
echo "curl=${CURL:-}"
[ -x "$REG" ] && echo "gc_binary=yes" || echo "gc_binary=no"
echo "registry_http=$(read_probe)"
[ -d "$D/lock" ] && echo "lock=$(cat "$D/lock/run_id" 2>/dev/null) $(cat "$D/deadline" 2>/dev/null)"
[ -e "$D/marker" ] && echo "marker=$(head -n 1 "$D/marker")"
[ -f "$D/restore.sh" ] && echo "restore_script=yes"
echo "now=$(date +%s)"
if [ -r "$CFG" ]; then
  echo "config_sha256=$(sha256sum < "$CFG" | cut -d ' ' -f 1)"
  echo "--- config (base64) ---"
  base64 < "$CFG"
else
  echo "config_readable=no"
fi
""")


def storage_check_script(storage_root: str, measure: str) -> str:
    """Refuse a missing storage or one GitLab's metadata database claims; else measure."""
    return f"""R={q(storage_root)}
[ -d "$R" ] || {{ echo "storage_missing"; exit 10; }}
[ -e "$R/docker/registry/lockfiles/database-in-use" ] && {{ echo "database_in_use"; exit 11; }}
[ -d "$R/docker/registry/v2/repositories" ] && echo "repositories=yes" || echo "repositories=no"
{measure}
"""


def parse_kv(text: str) -> dict[str, str]:
    """key=value lines (the last one of a key wins); other lines are ignored."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            out[key.strip()] = value.strip()
    return out
