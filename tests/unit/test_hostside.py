"""Host scripts: static, shellcheck-clean, valid for dash and BusyBox sh; their output parsed into outcomes."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gcops import hostside
from gcops.hostside import outcomes, scripts

SH_DIR = Path(hostside.__file__).parent / "sh"
NAMES = sorted(p.stem for p in SH_DIR.glob("*.sh") if not p.stem.endswith("common"))   # not the included ones
ON_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if ON_CI:
            pytest.fail(f"CI=true but {tool} is missing")
        pytest.skip(f"{tool} not installed")
    return path


@pytest.mark.parametrize("name", NAMES)
def test_each_script_as_sent_passes_shellcheck(name):
    shellcheck = _need("shellcheck")
    p = subprocess.run([shellcheck, "-s", "sh", "-S", "warning", "-"], input=scripts.text(name),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("shell", [["dash", "-n"], ["busybox", "sh", "-n"]])
@pytest.mark.parametrize("name", NAMES)
def test_each_script_parses_in_dash_and_busybox(shell, name):
    _need(shell[0])
    p = subprocess.run([*shell, "-c", scripts.text(name)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


NASTY = "x'; touch /tmp/gcops-never; echo \"$(id)\n`id` $HOME * a=b"


def _common(shell: list[str], body: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    """common.sh (the one shell include) and `body`, run by `shell` with `args` as "$1"..."""
    return subprocess.run([_need(shell[0]), *shell[1:], "-c", scripts._file("common") + "\n" + body, "test", *args],
                          capture_output=True, text=True, timeout=30, cwd=cwd, env={"PATH": os.environ["PATH"]})


@pytest.mark.parametrize("shell", [["dash"], ["busybox", "sh"]])
def test_take_args_gives_every_value_as_data(shell, tmp_path):
    """The one argument parser of the host scripts: quotes, $(...), globs, newlines reach the variables
    unchanged and are never run; an unknown key is refused before anything is done."""
    body = 'A=unset B=unset\ntake_args "a=A b=B" "$@"\nprintf "%s|" "$A" "$B"'
    p = _common(shell, body, f"a={NASTY}", "b=", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout == f"{NASTY}||", p.stderr
    assert not Path("/tmp/gcops-never").exists() and list(tmp_path.iterdir()) == []
    bad = _common(shell, body + "\necho ran", "a=1", "c=2")
    assert bad.returncode == 2 and bad.stdout == "bad_argument=c\n"
    assert _common(shell, body, "a").stdout == "bad_argument=a\n"


def test_read_params_reads_the_same_way_and_skips_unknown_keys(tmp_path):
    line = NASTY.replace("\n", " ")          # a params line never holds a newline (enter.sh refuses one)
    (tmp_path / "params").write_text(f"real={line}\nrun=r1\nmode=readonly\nother=x\n")
    p = _common(["dash"], 'D=$1\nread_params && printf "%s|" "$REAL" "$RUN" "$MODE"', str(tmp_path))
    assert p.returncode == 0 and p.stdout == f"{line}|r1|readonly|", p.stderr


def test_common_included_twice_defines_nothing_again():
    text = scripts._file("common") + "\nsay() { echo mine; }\n" + scripts._file("common") + "\nsay hi"
    p = subprocess.run([_need("dash"), "-c", text], capture_output=True, text=True, timeout=30)
    assert p.stdout == "mine\n"
    mark = scripts.text("concurrent_mark")       # concurrent_common includes common: sent once
    assert mark.count("GCOPS_COMMON_SH=1") == 1 and mark.count("alive()") == 1


def test_include_expands_common():
    text = scripts.text("enter")
    assert text.startswith(scripts._file("common")) and "\n# include: common" not in text


ENTER_OK = """stage=link
watchdog=setsid
window_start=1764431000.120000000
registry_restarted=yes
registry_fresh=yes
ready=1764431001.250000000
"""


def test_parse_enter():
    ok = outcomes.parse_enter(0, ENTER_OK)
    assert ok.entered and not ok.changed_nothing and ok.restarted == "yes"
    assert ok.window_start == pytest.approx(1764431000.12) and ok.ready == pytest.approx(1764431001.25)
    full = outcomes.parse_enter(78, "refused=cannot write /etc/docker/registry/.gcops/restore.sh (no space?)\n")
    assert full.changed_nothing and "no space" in full.reason
    locked = outcomes.parse_enter(75, "lock_held=gcops@ctl pid 12 run R\n")
    assert locked.changed_nothing and locked.locked_by == "gcops@ctl pid 12 run R"
    broken = outcomes.parse_enter(43, ENTER_OK.split("registry")[0] + "failed=not_answering\n")
    assert not broken.entered and not broken.changed_nothing and "not_answering" in broken.reason


def test_parse_check():
    assert outcomes.parse_check("write_probe=405\ncurl_rc=0\nread_probe=200\n").refuses_writes
    auth = outcomes.parse_check("write_probe=401\ncurl_rc=0\nread_probe=401\n")
    assert auth.needs_credentials and auth.answering and not auth.refuses_writes
    tls = outcomes.parse_check("write_probe=000\ncurl_rc=60\nread_probe=000\n")
    assert tls.tls_problem and not tls.answering


def test_parse_collect():
    done = outcomes.parse_collect(0, "gc_start=10.5\ngc_end=12.75\ngc_exit=0\n")
    assert done.started and done.exit_code == 0 and done.seconds == pytest.approx(2.25)
    lost = outcomes.parse_collect(50, "lock_lost=other-run\n")
    assert lost.lock_lost and not lost.started and lost.exit_code is None
    cut = outcomes.parse_collect(-1, "gc_start=10.5\n")       # the connection dropped mid-GC
    assert cut.started and cut.exit_code is None


def test_parse_leave():
    ok = outcomes.parse_leave(0, "probe_after_gc=405\nrestore_by=gcops\nconfig_restored=rename\n"
                                 "window_end=20.5\nprobe_after=400\nrestored=yes\nleave_exit=0\n")
    assert ok.restored and ok.kv.get("restored") == "yes" and ok.window_end == 20.5 and ok.probe_after_gc == "405"
    by_watchdog = outcomes.parse_leave(0, "not_ours=yes\nmarker=absent\n")
    assert by_watchdog.restored and "restored" not in by_watchdog.kv
    stolen = outcomes.parse_leave(0, "not_ours=yes\nmarker=present\n")
    assert not stolen.restored
    failed = outcomes.parse_leave(31, "restore_by=gcops\nconfig_restored=rename\nfailed=not_answering\nleave_exit=31\n")
    assert not failed.restored and "does not answer" in failed.reason
    # restore.sh's "restored=yes" is the only success: an exit 0 without it is not one
    assert not outcomes.parse_leave(0, "leave_exit=0\n").restored


def test_a_failing_host_script_is_named_with_its_exit_code_and_output(tmp_path):
    """Scripts go as `/bin/sh -c <text> gcops-<name> ...`: the error names the script, not /bin/sh
    (a real /bin/sh runs them here)."""
    from gcops.transport.hosts import CommandFailed, CommandTimeout, LocalHost

    with pytest.raises(CommandFailed) as failed:
        LocalHost().run(scripts.command("enter", "bogus=1"))
    message = str(failed.value)
    assert message.startswith("local: enter.sh exited 2: bad_argument=bogus"), message
    assert "/bin/sh" not in message
    with pytest.raises(CommandFailed) as failed:      # two scripts joined: both named
        LocalHost().run(hostside.storage_check_command(str(tmp_path / "gone"), scripts.command("measure", "x")))
    assert str(failed.value) == "local: storage_check.sh && measure.sh exited 10: storage_missing"
    (tmp_path / "lock").mkdir()                       # gc_wait.sh waits for a GC that runs on
    (tmp_path / "lock" / "run_id").write_text("r\n")
    (tmp_path / "gc.pid").write_text("1\n")
    with pytest.raises(CommandTimeout, match=r"^local: deadline passed while running gc_wait\.sh$"):
        LocalHost().stream(scripts.command("gc_wait", f"d={tmp_path}", "run=r", "seconds=3"), lambda line: None,
                           deadline=__import__("time").monotonic() + 0.3)
    with pytest.raises(CommandFailed, match=r"^local: cat /nonexistent/x exited 1: cat: /nonexistent/x"):
        LocalHost().run("cat /nonexistent/x")
    assert outcomes.parse_leave(9, "boom\n").reason == "restore failed (leave.sh exited 9): boom"


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_enter_that_lost_its_lock_leaves_the_new_holders_record_alone(shell, tmp_path):
    """enter.sh (dash / BusyBox sh, a real process) refuses at its commit point when another run took the lock
    meanwhile (here a fixture sha256sum hands it over after enter's own lock is complete): it must not delete
    that run's lock and record on its way out."""
    _need(shell)
    cfg = tmp_path / "config.yml"
    cfg.write_text("version: 0.1\n")
    d = tmp_path / ".gcops"
    stubs = tmp_path / "bin"
    stubs.mkdir()
    stub = stubs / "sha256sum"
    stub.write_text(f"""#!/bin/sh
# TEST FIXTURE: at enter's 7th checksum (its lock is complete), another run takes the lock over
n=$(( $(cat {tmp_path}/calls 2>/dev/null || echo 0) + 1 )); echo "$n" > {tmp_path}/calls
if [ "$n" -eq 7 ]; then rm -rf {d}/lock && mkdir {d}/lock && echo other-run > {d}/lock/run_id \
  && echo other > {d}/params; fi
exec {shutil.which("sha256sum")} "$@"
""")
    stub.chmod(0o755)
    plan = hostside.NodePlan(run_id="this-run", owner="test", config_path=str(cfg), registry_url="http://127.0.0.1:9",
                             mode="readonly", restart=":", stop=":", start=":", gc=":", max_window=60,
                             already_read_only=True)
    command = hostside.enter_command(plan, hostside.sha256_hex(cfg.read_bytes()), write_config=False)
    argv = [shutil.which(shell)] + (["sh"] if shell == "busybox" else []) + ["-c"] + __import__("shlex").split(command)[2:]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       env={"PATH": f"{stubs}:{os.environ['PATH']}"})
    assert p.returncode == 78 and "refused=this run no longer holds the lock" in p.stdout, p.stdout + p.stderr
    assert (d / "lock" / "run_id").read_text() == "other-run\n"          # the new holder's lock and record stay
    assert (d / "params").exists()                                       # not deleted on the way out


def test_a_lock_without_its_own_deadline_is_held_until_long_unarmed():
    """preflight.sh prints a lock's deadline only once its holder wrote it (after taking the lock); a lock just
    taken is held, whatever an earlier run's deadline file says."""
    from gcops.maintenance.preflight import UNARMED_LOCK_SECONDS, NodeFacts

    def facts(lock: str, since: int, now: int = 10_000) -> NodeFacts:
        return NodeFacts("h", kv={"lock": lock, "lock_since": str(since), "now": str(now)})

    assert facts("run-a ", since=9_999).lock == ("run-a", None)
    assert not facts("run-a ", since=9_999).lock_is_stale                      # just taken
    assert not facts(" ", since=9_999).lock_is_stale                           # run_id not even written yet
    assert facts("run-a ", since=10_000 - UNARMED_LOCK_SECONDS - 1).lock_is_stale   # enter died before arming
    assert not facts("run-a 9990", since=9_000).lock_is_stale                  # its own deadline, not long past
    assert facts("run-a 9000", since=8_000).lock_is_stale                      # its own deadline long past
