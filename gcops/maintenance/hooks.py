"""User hooks: shell commands run on the gcops machine before and after a run.

A hook learns about the run from environment variables (and the whole run
document, as JSON, in the file named by GCOPS_REPORT_JSON). A hook that fails or
times out is logged and reported as False; it never stops gcops and never
raises: a broken notification script must not leave a registry read-only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from typing import Any

from gcops.state.history import PASSWORD_ENV

HOOK_KINDS = ("before", "after", "on_error")
HOOK_TIMEOUT_SECONDS = 300.0
_TERM_GRACE_SECONDS = 10.0
_OUTPUT_TAIL_CHARS = 2000


def _run_failed(run: dict) -> bool:
    exit_code = run.get("exit_code")
    if exit_code is not None:
        return exit_code != 0
    return any(r.get("status") != "ok" for r in run.get("instances") or [])


def hook_environment(kind: str, run: dict, report_path: str) -> dict[str, str]:
    """The GCOPS_* variables for ``kind``; outcome variables only once the run is over.

    ``before`` gets GCOPS_HOOK, GCOPS_RUN_ID, GCOPS_INSTANCES (the targets) and
    GCOPS_REPORT_JSON; ``after`` and ``on_error`` also get GCOPS_EXIT_CODE,
    GCOPS_STATUS (ok|failed), GCOPS_RECLAIMED_BYTES, GCOPS_INSTANCES_OK,
    GCOPS_INSTANCES_FAILED and GCOPS_FAILED_INSTANCES.
    """
    instances = [r for r in run.get("instances") or [] if r.get("name")]
    env = {
        "GCOPS_HOOK": kind,
        "GCOPS_RUN_ID": str(run.get("run_id") or ""),
        "GCOPS_INSTANCES": ",".join(str(r["name"]) for r in instances),
        "GCOPS_REPORT_JSON": report_path,
    }
    if kind == "before":
        return env
    totals = run.get("totals") or {}
    reclaimed = totals.get("reclaimed_bytes")
    if reclaimed is None:
        reclaimed = sum(r["reclaimed_bytes"] for r in instances
                        if r.get("status") == "ok" and isinstance(r.get("reclaimed_bytes"), int))
    ok = totals.get("instances_ok")
    # Like the run's totals: every instance that did not end "ok" (skipped ones too).
    failed_names = [str(r["name"]) for r in instances if r.get("status") != "ok"]
    failed = totals.get("instances_failed")
    env.update({
        "GCOPS_EXIT_CODE": "" if run.get("exit_code") is None else str(run["exit_code"]),
        "GCOPS_STATUS": "failed" if _run_failed(run) else "ok",
        "GCOPS_RECLAIMED_BYTES": str(reclaimed),
        "GCOPS_INSTANCES_OK": str(ok if ok is not None
                                  else sum(r.get("status") == "ok" for r in instances)),
        "GCOPS_INSTANCES_FAILED": str(failed if failed is not None else len(failed_names)),
        "GCOPS_FAILED_INSTANCES": ",".join(failed_names),
    })
    return env


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the hook's whole process group, SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, _TERM_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(output_file: Any) -> str:
    output_file.seek(0, os.SEEK_END)
    size = output_file.tell()
    output_file.seek(max(0, size - _OUTPUT_TAIL_CHARS * 4))
    return output_file.read().decode("utf-8", "replace")[-_OUTPUT_TAIL_CHARS:].strip()


def run_hook(kind: str, command: str | None, run: dict, *, log: Any,
             timeout: float = HOOK_TIMEOUT_SECONDS) -> bool:
    """Run the ``kind`` hook ``command`` with ``/bin/sh -c``; True when it exited 0.

    No command: nothing to do, True. Failure, timeout (the hook's process group
    is terminated) or an OS error: logged as ``hook_failed``, False. The command
    itself is never logged: it may carry a webhook token.
    ValueError only for an unknown ``kind`` (a bug, not a runtime condition).
    """
    if kind not in HOOK_KINDS:
        raise ValueError(f"unknown hook kind {kind!r}; expected one of {', '.join(HOOK_KINDS)}")
    if not command:
        return True
    started = time.monotonic()
    report_path = None
    try:
        # mkstemp: mode 0600, the run document may name internal hosts.
        fd, report_path = tempfile.mkstemp(prefix=f"gcops-hook-{kind}-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as report_file:
            json.dump(run, report_file, indent=2)
        # the history's password is gcops' own: a hook never sees it
        inherited = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
        env = {**inherited, **hook_environment(kind, run, report_path)}
        with tempfile.TemporaryFile() as output:
            # Output goes to a file, not a pipe: a background child of the hook
            # holding a pipe open would make us wait for it forever.
            process = subprocess.Popen(["/bin/sh", "-c", command], env=env,
                                       stdin=subprocess.DEVNULL, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                exit_code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_group(process)
                log.warning("hook_failed", hook=kind, exit_code=None, reason="timeout",
                            timeout_seconds=timeout, output=_tail(output))
                return False
            finally:
                if process.poll() is None:  # interrupted (e.g. KeyboardInterrupt)
                    _stop_group(process)
            seconds = round(time.monotonic() - started, 3)
            if exit_code != 0:
                log.warning("hook_failed", hook=kind, exit_code=exit_code, seconds=seconds,
                            output=_tail(output))
                return False
        log.info("hook_finished", hook=kind, seconds=seconds)
        return True
    except (OSError, ValueError) as exc:  # a hook that cannot start, or a document it cannot take: logged
        log.warning("hook_failed", hook=kind, exit_code=None, error=str(exc))
        return False
    finally:
        if report_path is not None:
            try:
                os.unlink(report_path)
            except OSError:
                pass
