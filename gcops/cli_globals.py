"""Global options (--config, --log-format, -v, -q) accepted before or after the command.

Admins type `gcops run -v` and `gcops report --config x.toml` as often as
`gcops -v run`. click binds an option to the command it follows, so the root
group moves every global option found after the command word in front of it
before click parses anything. Everything after `--` is left alone.
"""
from __future__ import annotations

import re
import sys

import click

# option name -> takes a value
GLOBAL_OPTIONS = {"--config": True, "--log-format": True, "-v": False, "--verbose": False,
                  "-q": False, "--quiet": False}
_SHORT_FLAGS = re.compile(r"^-[vq]+$")  # -v, -vv, -qv ...

EXIT_USAGE = 2
TARGETS_HELP = "TARGET: instance names from the config; none means every instance."

GLOBAL_EPILOG = ("Global options --config PATH, --log-format console|json, -v and -q may also be given "
                 "after the command (see gcops --help).")


def _global_at(args: list[str], i: int) -> int:
    """How many tokens from args[i] on form one global option (0: none)."""
    token = args[i]
    if _SHORT_FLAGS.match(token):
        return 1
    name, eq, _ = token.partition("=")
    if name not in GLOBAL_OPTIONS:
        return 0
    if not GLOBAL_OPTIONS[name] or eq:
        return 1
    return 2 if i + 1 < len(args) else 1  # a missing value is click's to report


def hoist_global_options(args: list[str], value_options: set[str]) -> list[str]:
    """Give ``args`` with every global option after the command word moved before it.

    ``value_options``: the root group's own options that take a value (their value is
    not the command word). Tokens after ``--`` are never moved.
    """
    args = list(args)
    i = 0
    while i < len(args):  # find the command word
        token = args[i]
        if token == "--":
            return args
        if token.startswith("-"):
            i += 2 if token in value_options else 1
            continue
        break
    if i >= len(args):
        return args
    command_at = i
    moved: list[str] = []
    rest: list[str] = []
    j = command_at + 1
    while j < len(args):
        if args[j] == "--":
            rest.extend(args[j:])
            break
        n = _global_at(args, j)
        if n:
            moved.extend(args[j:j + n])
            j += n
        else:
            rest.append(args[j])
            j += 1
    return args[:command_at] + moved + [args[command_at]] + rest


class GcopsCommand(click.Command):
    """A command whose help says the global options work after it too."""

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text(GLOBAL_EPILOG)


class GcopsGroup(click.Group):
    """A group whose subcommands get GcopsCommand/GcopsGroup; the root one hoists global options."""

    command_class = GcopsCommand

    def parse_args(self, ctx, args):
        if ctx.parent is None:
            value_options = {name for param in self.params if isinstance(param, click.Option)
                             and not param.is_flag and not param.count for name in param.opts}
            args = hoist_global_options(args, value_options)
        return super().parse_args(ctx, args)

    def format_commands(self, ctx, formatter):
        """The command list with whole first lines of each docstring (click cuts them at 45 chars)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=200)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


GcopsGroup.group_class = GcopsGroup


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit 2 (nothing was touched)."""
    click.echo(f"gcops: {message}", err=True)
    sys.exit(EXIT_USAGE)
