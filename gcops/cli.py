"""Command line: parse arguments, set up logging, call one action, map the result to an exit code.

Human output goes to stdout; with --json stdout holds exactly one JSON
document; logs go to stderr. Errors the user can fix are one line each and
exit 2, before any host is contacted.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import click
import structlog

from gcops import __version__, logs, output
from gcops.cli_admin import config_group, history_group, schedule
from gcops.cli_globals import EXIT_USAGE, TARGETS_HELP, GcopsGroup, fail
from gcops.config import Config, ConfigError, Settings, find_config_path, load_config, parse_duration
from gcops.config.locate import config_not_found, load_settings
from gcops.errors import GcopsError, UsageError

JSON_HELP = "Print one JSON document on stdout (logs stay on stderr); no tables, no progress view."
_verbosity = {"verbose": 0}  # read by main() to decide whether a crash shows its traceback


class Context:
    def __init__(self, config_arg: str | None, verbose: int, quiet: bool):
        self.config_arg = config_arg
        self.verbose = verbose
        self.quiet = quiet

    def _path(self) -> Path:
        path = find_config_path(self.config_arg)
        missing = config_not_found(path, self.config_arg)
        if missing:
            raise ConfigError([missing])
        structlog.get_logger().debug("config_file", path=str(path))
        return path

    def config(self) -> Config:
        """The whole validated config; ConfigError otherwise."""
        return load_config(self._path())

    def settings(self) -> Settings:
        """Only [gcops] (enough for the history); ConfigError otherwise."""
        return load_settings(self._path())


def _refuse_combinations(config: Config, request) -> None:
    """Options that cannot work together on a targeted instance: exit 2 before any host is contacted."""
    from gcops.actions.run import options_for
    from gcops.maintenance.concurrent import refusal

    for instance in config.select(request.targets):
        opts = options_for(instance, request)
        problem = refusal(opts.mode, opts.delete_untagged)
        if problem:
            fail(f"{instance.name}: {problem}")


def _emit_json(doc: dict) -> None:
    click.echo(json.dumps(doc, indent=2, sort_keys=False))


def _duration(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group(cls=GcopsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Global options may also come after the command: gcops run -v --config x.toml. "
                    "Shell completion: see README (eval \"$(_GCOPS_COMPLETE=bash_source gcops)\").")
@click.option("--config", "config_arg", metavar="PATH",
              help="Config file (default: $GCOPS_CONFIG, else ./gcops.toml, else /etc/gcops/config.toml).")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True,
              help="Logs on stderr as readable lines, or as one JSON object per line for log collectors.")
@click.option("-v", "--verbose", count=True, help="Debug log events, and a traceback when gcops itself fails.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr; no live progress view.")
@click.version_option(__version__, "--version", prog_name="gcops", help="Print the version and exit.")
@click.pass_context
def main_group(ctx, config_arg, log_format, verbose, quiet):
    """Reclaim disk space from container registries: read-only, GC, restore exactly, report."""
    logs.configure(log_format, -1 if quiet else min(verbose, 1))
    _verbosity["verbose"] = 0 if quiet else verbose
    ctx.obj = Context(config_arg, verbose, quiet)


def _load(ctx) -> Config:
    return ctx.obj.config()


@main_group.command(epilog=TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def check(ctx, targets, as_json):
    """Preflight only: can each instance be garbage-collected safely? Changes nothing."""
    from gcops.actions.check import check as do_check

    doc = do_check(_load(ctx), targets)
    _emit_json(doc) if as_json else click.echo(output.check_table(doc), nl=False)
    sys.exit(0 if all(i["ok"] for i in doc["instances"]) else 1)


@main_group.command(epilog=TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--delete-untagged", is_flag=True, default=None,
              help="Also count manifests no tag points to (never children of a tagged index).")
@click.option("--no-retention", is_flag=True, help="Leave out the instances' [[instance.retention]] rules.")
@click.pass_context
def plan(ctx, targets, as_json, delete_untagged, no_retention):
    """The registry's own GC in dry-run: what would go, and how many bytes."""
    from gcops.actions.plan import plan as do_plan

    config = _load(ctx)
    from gcops.actions.run import RunRequest

    _refuse_combinations(config, RunRequest(targets=targets, delete_untagged=delete_untagged))
    doc = do_plan(config, targets, delete_untagged, retention=not no_retention)
    _emit_json(doc) if as_json else click.echo(output.plan_table(doc), nl=False)
    sys.exit(0 if not any(i.get("error") for i in doc["instances"]) else 1)


@main_group.command(epilog=TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--delete-untagged", is_flag=True, default=None,
              help="Remove manifests no tag points to (never children of a tagged index).")
@click.option("--mode", type=click.Choice(["readonly", "stop", "concurrent"]), default=None,
              help="readonly: writes refused (405) during GC, reads go on; stop: registry down during GC; "
                   "concurrent: the GC marks while writes go on, writes are refused only for the final delta "
                   "and the sweep. Default: the config's mode.")
@click.option("--parallel", type=click.IntRange(min=1), default=None, help="Instances worked at once.")
@click.option("--max-window", callback=_duration, metavar="DURATION",
              help="Longest read-only window (90s, 30m, 2h); past it GC is stopped and service restored.")
@click.option("--dry-run", is_flag=True, help="Print every step and command; change nothing.")
@click.option("--no-retention", is_flag=True, help="Delete no tag this run ([[instance.retention]] rules off).")
@click.pass_context
def run(ctx, targets, as_json, delete_untagged, mode, parallel, max_window, dry_run, no_retention):
    """The whole cycle: preflight, measure, read-only (or stop), GC, restore, verify, record."""
    from gcops.actions.run import RunRequest, run as do_run

    config = _load(ctx)
    request = RunRequest(targets=targets, mode=mode, delete_untagged=delete_untagged,
                         max_window=max_window, parallel=parallel, retention=not no_retention)
    config.select(targets)  # unknown names: exit 2 before anything is contacted
    _refuse_combinations(config, request)
    if dry_run:
        from gcops.actions.dry_run import dry_run as do_dry_run

        doc = do_dry_run(config, request)
        _emit_json(doc) if as_json else click.echo(output.dry_run_text(doc), nl=False)
        sys.exit(1 if any(inst["refused"] for inst in doc["instances"]) else 0)
    from gcops.progress import live_progress

    with live_progress(enabled=not as_json and not ctx.obj.quiet and sys.stdout.isatty()) as on_step:
        doc = do_run(config, request, on_step=on_step)
    if doc.get("history_error"):
        click.echo(f"gcops: history: {doc['history_error']}", err=True)
    if as_json:
        _emit_json(doc)
    else:
        click.echo(output.run_table(doc), nl=False)
        for inst in doc["instances"]:
            if inst["error"]:
                click.echo(f"{inst['name']}: {inst['status']}: {inst['error']}", err=True)
            if inst.get("read_only_verified") is False:
                click.echo(f"{inst['name']}: warning: read-only was NOT verified by a write probe (the registry "
                           "wants credentials); set [instance.probe] to verify it", err=True)
    sys.exit(doc["exit_code"])


@main_group.command(epilog=TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def recover(ctx, targets, as_json):
    """Restore instances an interrupted run left changed."""
    from gcops.actions.recover import recover as do_recover

    doc, code = do_recover(_load(ctx), targets)
    _emit_json(doc) if as_json else click.echo(output.recover_table(doc), nl=False)
    sys.exit(code)


@main_group.command()
@click.option("--since", metavar="DATE", help="Runs started at or after: YYYY-MM-DD, ISO datetime, or an age (7d).")
@click.option("--until", metavar="DATE", help="Runs started before: YYYY-MM-DD (that whole day), ISO datetime, "
                                              "or an age (24h).")
@click.option("--instance", metavar="NAME", help="Only this instance's results.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown", "html"]),
              default="table", show_default=True, help="html: one self-contained page with charts.")
@click.option("--wide", is_flag=True, help="table: every column, even past the terminal's width.")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to FILE (replaced atomically) instead of stdout; its folder must exist.")
@click.pass_context
def report(ctx, since, until, instance, fmt, wide, output_path):
    """Reclaimed space per run and instance, over time (needs only [gcops] of the config)."""
    from gcops.actions.report import report as do_report
    from gcops.errors import GcopsError
    from gcops.state.history import open_history

    settings = ctx.obj.settings()
    try:
        text = do_report(open_history(settings), since=since, until=until, instance=instance, fmt=fmt,
                         output=output_path, wide=wide)
    except (ValueError, GcopsError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"-o {output_path}: cannot write the report: {exc.strerror or exc}")
    if text:
        click.echo(text, nl=not text.endswith("\n"))


for group in (history_group, schedule, config_group):
    main_group.add_command(group)


def main() -> None:
    try:
        main_group(prog_name="gcops", standalone_mode=False)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"gcops: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    except UsageError as exc:        # bad input found after the config loaded (a playbook, an ssh config)
        click.echo(f"gcops: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except GcopsError as exc:        # every action handles these per instance; one line if one escapes
        click.echo(f"gcops: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("gcops: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code in (1, 2) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:
        structlog.get_logger().error("os_error", error=str(exc))
        if _verbosity["verbose"]:
            traceback.print_exc()
        click.echo(f"gcops: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - a bug in gcops: one line, the traceback with -v
        if _verbosity["verbose"]:
            traceback.print_exc()
            click.echo(f"gcops: internal error: {type(exc).__name__}: {exc}", err=True)
        else:
            click.echo(f"gcops: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
                       err=True)
        sys.exit(1)
