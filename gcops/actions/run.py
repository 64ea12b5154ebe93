"""`gcops run`: the maintenance cycle on every targeted instance, then record, metrics, hooks."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

import structlog

from gcops.state import history
from gcops.maintenance import hooks
from gcops.storage import identity
from gcops.actions.common import cancel_on_signals, map_parallel
from gcops.config import Config, Instance
from gcops.errors import GcopsError
from gcops.maintenance import InstanceCycle, RunOptions
from gcops.report.metrics import write_metrics
from gcops.state.results import InstanceResult, exit_code_for, new_run_id, run_document


@dataclass(frozen=True)
class RunRequest:
    targets: Sequence[str]
    mode: str | None = None              # None: each instance's own setting
    delete_untagged: bool | None = None
    max_window: float | None = None
    parallel: int | None = None
    retention: bool = True               # False: --no-retention


def options_for(instance: Instance, request: RunRequest) -> RunOptions:
    return RunOptions(
        mode=request.mode or instance.mode,
        delete_untagged=instance.delete_untagged if request.delete_untagged is None else request.delete_untagged,
        max_window=request.max_window or instance.max_window,
        retention=request.retention,
    )


def run(config: Config, request: RunRequest,
        on_step: Callable[..., None] | None = None) -> dict:
    """Work every targeted instance; give the SPEC run document (exit_code included)."""
    log = structlog.get_logger()
    instances = config.select(request.targets)
    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    state_dir = config.settings.state_dir
    hooks.run_hook("before", config.hooks.before,
                   {"run_id": run_id, "command": "run", "instances": [{"name": i.name} for i in instances]},
                   log=log)
    parallel = request.parallel or config.settings.parallel
    store = history.open_history(config.settings)
    _send_kept(store, state_dir, log)   # runs kept earlier first: their storage owners count below
    log.info("run_started", run_id=run_id, instances=[i.name for i in instances], parallel=parallel)
    with cancel_on_signals() as cancel:
        # before any instance's cycle starts (so before any window opens), read every
        # targeted instance's storage id; instances sharing a storage are refused (storage/identity.py).
        # A pre-phase, not a barrier inside the cycles: with --parallel < instances a barrier deadlocks.
        screening = identity.screen(
            config, map_parallel(lambda i: identity.sight(i, create=True), instances, parallel), log, store)

        def work(instance: Instance) -> InstanceResult:
            if instance.name in screening.refusals:
                opts = options_for(instance, request)
                return identity.refused_result(instance, opts.mode, opts.delete_untagged,
                                                     screening.refusals[instance.name])
            if cancel.is_set():
                result = InstanceResult(name=instance.name, hosts=list(instance.hosts),
                                        playbook=instance.playbook.name, mode=options_for(instance, request).mode,
                                        delete_untagged=options_for(instance, request).delete_untagged,
                                        error="interrupted before it started", interrupted=True)
                return result
            cycle = InstanceCycle(instance, options_for(instance, request), run_id, state_dir, cancel, on_step)
            return cycle.execute()

        results = map_parallel(work, instances, parallel)
        interrupted = cancel.is_set()
    code = exit_code_for(results, interrupted)
    doc = run_document("run", run_id, started, datetime.now(timezone.utc), False, results, code)
    recording = history.record_or_keep(store, state_dir, doc,
                                       identity.owned_storages(screening, results, run_id, started))
    _write_metrics(config, doc, log, recording.waiting)
    if not recording.recorded:
        # the registries are as they should be, the record is kept: exit 1 (SPEC: failed, all restored)
        log.error("history_not_recorded", run_id=run_id, error=recording.error, waiting=recording.waiting)
        doc = {**doc, "exit_code": code or 1, "history_error": recording.error}
        code = doc["exit_code"]
    elif recording.sent_earlier:
        log.info("history_kept_runs_sent", runs=recording.sent_earlier, history=store.where)
    if recording.warning:
        log.warning("history_kept_run_not_sent", error=recording.warning)
    hooks.run_hook("after", config.hooks.after, doc, log=log)
    if code != 0:
        hooks.run_hook("on_error", config.hooks.on_error, doc, log=log)
    log.info("run_finished", run_id=run_id, exit_code=code,
             reclaimed_bytes=doc["totals"]["reclaimed_bytes"])
    return doc


def _send_kept(store: history.SqlHistory, state_dir, log) -> None:
    """Send runs earlier commands could not record; a failure is logged (the run's end tries again)."""
    try:
        sending = history.Outbox(state_dir).send(store)
    except OSError as exc:
        log.warning("history_kept_runs_waiting", error=str(exc))
        return
    if sending.sent:
        log.info("history_kept_runs_sent", runs=sending.sent, history=store.where)
    if sending.error:
        log.warning("history_kept_runs_waiting", runs=sending.waiting, error=sending.error)


def _write_metrics(config: Config, doc: dict, log, history_unsent: int) -> None:
    """The metrics textfile; a failure here is logged, never turns a restored run into a failure."""
    if config.settings.metrics_textfile is not None:
        try:
            write_metrics(config.settings.metrics_textfile, doc, history_unsent)
        except (OSError, GcopsError) as exc:
            log.error("metrics_not_written", path=str(config.settings.metrics_textfile), error=str(exc))
