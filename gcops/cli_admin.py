"""The administrative command groups: `history import`, `schedule install|show|remove`, `config validate`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from gcops.cli_globals import TARGETS_HELP, GcopsGroup, fail


@click.group("history", cls=GcopsGroup)
def history_group():
    """The run history: SQLite in state_dir, or a shared PostgreSQL database."""


@history_group.command("import")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="The SQLite history to copy (default: history.sqlite3 in [gcops] state_dir).")
@click.pass_context
def history_import(ctx, source):
    """Copy a SQLite history into the PostgreSQL one ([gcops] history); runs already there are left as
    they are, so importing twice copies nothing the second time (needs only [gcops] of the config)."""
    from gcops.actions.history_import import ImportRefused, import_history
    from gcops.state.history import HistoryError

    try:
        outcome = import_history(ctx.obj.settings(), source)
    except ImportRefused as exc:
        fail(str(exc))
    except HistoryError as exc:
        click.echo(f"gcops: {exc}", err=True)
        sys.exit(1)
    click.echo(outcome)


@click.group(cls=GcopsGroup)
def schedule():
    """Nightly runs: a systemd timer + service, or a cron.d line."""


def _gcops_command() -> list[str]:
    """The absolute command a timer or cron runs: this gcops, as systemd would start it.

    Raises ValueError when that command could not work there (gcops not installed
    for this Python, only found through PYTHONPATH or the current directory).
    """
    script = Path(sys.argv[0])
    if script.name == "gcops" and script.exists():
        return [str(script.resolve())]
    probe = subprocess.run([sys.executable, "-c", "import gcops"], cwd="/", capture_output=True,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, check=False)
    if probe.returncode != 0:
        raise ValueError(f"gcops is not installed for {sys.executable} (found only through PYTHONPATH or the "
                         "current directory), so a timer would fail with 'No module named gcops'; install it "
                         "(sh scripts/install.sh, or pip install .) and run the installed `gcops schedule install`")
    return [sys.executable, "-m", "gcops"]


UNIT_DIR_HELP = "Where the systemd timer and service units live."


@schedule.command("install", epilog=TARGETS_HELP)
@click.argument("targets", nargs=-1)
@click.option("--at", default="03:00", show_default=True, metavar="HH:MM", help="Local time of the nightly run.")
@click.option("--cron", is_flag=True, help="Write /etc/cron.d/gcops instead of systemd units.")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help=UNIT_DIR_HELP)
@click.pass_context
def schedule_install(ctx, targets, at, cron, unit_dir):
    """Write and enable a nightly `gcops run` (systemd timer + service, or a cron.d line)."""
    from gcops.actions import schedule as sched

    config = ctx.obj.config()
    config.select(targets)
    try:
        paths = sched.install(config_path=config.path.resolve(), targets=targets, at=at, cron=cron,
                              unit_dir=unit_dir, gcops_command=_gcops_command(), echo=click.echo)
    except (ValueError, sched.ScheduleError, OSError) as exc:
        fail(str(exc))
    for path in paths:
        click.echo(f"wrote {path}")


@schedule.command("show")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help=UNIT_DIR_HELP)
def schedule_show(unit_dir):
    """Print the installed schedule (units or cron line), if any."""
    from gcops.actions import schedule as sched

    click.echo(sched.show(unit_dir=unit_dir))


@schedule.command("remove")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/systemd/system"),
              show_default=True, help=UNIT_DIR_HELP)
def schedule_remove(unit_dir):
    """Disable and delete the schedule gcops installed."""
    from gcops.actions import schedule as sched

    try:
        removed = sched.remove(unit_dir=unit_dir, echo=click.echo)
    except (ValueError, sched.ScheduleError) as exc:
        fail(str(exc))
    for path in removed:
        click.echo(f"removed {path}")
    if not removed:
        click.echo("nothing to remove")


@click.group("config", cls=GcopsGroup)
def config_group():
    """Configuration helpers."""


@config_group.command("validate")
@click.pass_context
def config_validate(ctx):
    """Load and check the config; print every problem."""
    config = ctx.obj.config()
    click.echo(f"{config.path}: ok ({len(config.instances)} instance(s): "
               f"{', '.join(i.name for i in config.instances)})")
