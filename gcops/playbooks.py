"""Playbooks: where things are on one kind of registry deployment, and how to restart it.

A playbook is a TOML file with ``name``, ``summary``, a ``[vars]`` table of
defaults (paths and URLs as seen from the registry host) and a ``[commands]``
table of shell templates. Built-in playbooks live in the repository's
``playbooks/`` folder; users add their own in ``[gcops] playbook_dirs``, which
are searched first.

Templates are rendered by :func:`render`, which replaces each ``{var}`` with the
var's value passed through :func:`shlex.quote`, so a value always reaches the
shell as one inert word. ``str.format`` is never used on templates or values:
a value such as ``"{x}"`` or ``"$(reboot)"`` must stay data.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gcops
from gcops.errors import UsageError
from gcops.textfiles import TextFileError, read_toml

REQUIRED_COMMANDS = ("restart", "stop", "start", "gc")
TOP_LEVEL_KEYS = ("name", "summary", "vars", "commands", "container")
CONTAINER_KEYS = ("vars", "commands")
CONTAINER_REQUIRED_COMMANDS = ("restart", "gc")
CONTAINER_COMMANDS = (*REQUIRED_COMMANDS, "status", "gc_stop")   # gc_stop: end an exec'd GC inside
# vars gcops itself gives the [container.commands] templates: the engine command (already quoted words)
# and the id of the container it resolved
CONTAINER_GIVEN_VARS = ("engine", "container_id")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
PLAYBOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Playbook:
    """A validated playbook: var defaults and command templates."""

    name: str
    summary: str
    path: Path
    vars: dict[str, str]
    commands: dict[str, str]
    # [container]: the same deployment run by a container engine (an instance with `engine` set):
    # var values as seen INSIDE the container, and commands run on the engine host
    container_vars: dict[str, str] = field(default_factory=dict)
    container_commands: dict[str, str] = field(default_factory=dict)


class PlaybookError(UsageError):
    """A playbook cannot be used; ``problems`` holds one full line per problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def builtin_playbook_dir() -> Path:
    """Give the folder holding the built-in playbooks (inside the package, so installs carry them;
    the repository's top-level ``playbooks`` is a link to it)."""
    return Path(gcops.__file__).resolve().parent / "builtin_playbooks"


def find_playbook(name: str, dirs: Sequence[Path]) -> Path | None:
    """Give the path of ``<name>.toml`` in the first of ``dirs`` holding it, then the built-in dir.

    Gives None when no folder holds it, or when ``name`` is not a plain
    playbook name (a name with a slash could otherwise reach any file).
    """
    if not PLAYBOOK_NAME.fullmatch(name):
        return None
    for folder in (*dirs, builtin_playbook_dir()):
        candidate = Path(folder) / f"{name}.toml"
        if candidate.is_file():
            return candidate
    return None


def _tokenize(template: str) -> list[tuple[bool, str]]:
    """Split a template into (is_var, text) pieces; raise ValueError on a stray brace."""
    pieces: list[tuple[bool, str]] = []
    literal: list[str] = []
    i, end = 0, len(template)
    while i < end:
        char = template[i]
        if char in "{}" and template.startswith(char * 2, i):
            literal.append(char)
            i += 2
        elif char == "{":
            close = template.find("}", i + 1)
            if close == -1:
                raise ValueError(f"unclosed '{{' at position {i}; write '{{{{' for a literal brace")
            name = template[i + 1 : close]
            if not VAR_NAME.fullmatch(name):
                raise ValueError(
                    f"'{{{name}}}' at position {i} is not a var reference "
                    "(a var name is letters, digits and '_'); write '{{' and '}}' for literal braces"
                )
            if literal:
                pieces.append((False, "".join(literal)))
                literal = []
            pieces.append((True, name))
            i = close + 1
        elif char == "}":
            raise ValueError(f"single '}}' at position {i}; write '}}}}' for a literal brace")
        else:
            literal.append(char)
            i += 1
    if literal:
        pieces.append((False, "".join(literal)))
    return pieces


def template_vars(template: str) -> list[str]:
    """Give the var names a template uses, in order; raise ValueError if it is malformed."""
    return [text for is_var, text in _tokenize(template) if is_var]


def render(template: str, vars: Mapping[str, str], raw: Mapping[str, str] | None = None) -> str:
    """Give ``template`` with every ``{name}`` replaced by ``shlex.quote(vars[name])``.

    ``{{`` and ``}}`` give literal braces. Values are substituted once and never
    re-scanned. ``raw`` holds text gcops has already quoted itself (a command's words, such as
    the container engine's): substituted as it is. Raises PlaybookError for a malformed
    template or an unknown var.
    """
    raw = raw or {}
    vars = {**vars, **{name: "" for name in raw}}
    try:
        pieces = _tokenize(template)
    except ValueError as exc:
        raise PlaybookError([f"command template {template!r}: {exc}"]) from None
    unknown = sorted({text for is_var, text in pieces if is_var and text not in vars})
    if unknown:
        known = ", ".join(sorted(vars)) or "none"
        raise PlaybookError(
            [f"command template {template!r}: unknown var '{name}' (known vars: {known})" for name in unknown]
        )
    return "".join((raw[text] if text in raw else shlex.quote(vars[text])) if is_var else text
                   for is_var, text in pieces)


def as_literal_template(command: str) -> str:
    """A rendered command written as a template that renders back to itself (braces doubled)."""
    return command.replace("{", "{{").replace("}", "}}")


def describe_value(value: Any) -> str:
    """Name a TOML value and its type for messages: 'integer 3', 'boolean true', 'table'."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}" if value else "empty string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return f"date/time {value}"


def _read_toml(path: Path) -> dict[str, Any]:
    """Give the TOML document at ``path``; raise PlaybookError with one line if it cannot be read."""
    try:
        return read_toml(path, "playbook")
    except TextFileError as exc:
        raise PlaybookError([str(exc)]) from None


def _string_table(data: dict[str, Any], key: str, bad) -> dict[str, str]:
    """Give the table ``data[key]`` keeping only its string values; report every other value."""
    table = data.get(key, {})
    if not isinstance(table, dict):
        bad(key, f"expected a table, got {describe_value(table)}")
        return {}
    strings = {}
    for name, value in table.items():
        if not isinstance(value, str):
            bad(f"{key}.{name}", f"expected a string, got {describe_value(value)}")
        elif "\0" in value:
            bad(f"{key}.{name}", "contains a NUL character, which no command can receive")
        else:
            strings[name] = value
    return strings


def load_playbook(path: Path) -> Playbook:
    """Give the validated playbook at ``path``.

    Raises PlaybookError listing every problem at once, one line each naming
    the file and key: unreadable or malformed TOML, unknown top-level keys,
    a missing or non-string name/summary, non-string vars or commands, a
    missing required command, a malformed template or one using an undefined var.
    """
    path = Path(path)
    data = _read_toml(path)
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{path}: at '{key}': {message}")

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            bad(key, f"unknown key; expected one of: {', '.join(TOP_LEVEL_KEYS)}")
    texts = {}
    for key in ("name", "summary"):
        value = data.get(key)
        if value is None:
            bad(key, "required key is missing")
        elif not isinstance(value, str) or not value.strip():
            bad(key, f"expected a non-empty string, got {describe_value(value)}")
        else:
            texts[key] = value

    defaults = _string_table(data, "vars", bad)
    for name, value in defaults.items():
        if not VAR_NAME.fullmatch(name):
            bad(f"vars.{name}", "a var name must be letters, digits and '_', not starting with a digit")
        elif CONTROL_CHARS.search(value):
            bad(f"vars.{name}", "contains a control character (newline, tab...); vars are single-line text")
    if "commands" not in data:
        bad("commands", "required table is missing")
    commands = _string_table(data, "commands", bad)
    if isinstance(data.get("commands"), dict):
        for name in REQUIRED_COMMANDS:
            if name not in data["commands"]:
                bad(f"commands.{name}", "required command is missing")
    # Vars declared with a wrong value are reported above; do not report them again as undefined.
    declared = data.get("vars", {}) if isinstance(data.get("vars", {}), dict) else None
    for name, template in commands.items():
        _check_template(template, None if declared is None else set(declared),
                        lambda m, name=name: bad(f"commands.{name}", m),
                        f"define it in [vars]; known vars: {', '.join(declared or ()) or 'none'}")

    container_vars, container_commands = _container_table(data, defaults, bad)
    if problems:
        raise PlaybookError(problems)
    return Playbook(
        name=texts["name"], summary=texts["summary"], path=path, vars=defaults, commands=commands,
        container_vars=container_vars, container_commands=container_commands,
    )


def _container_table(data: dict[str, Any], defaults: dict[str, str], bad) -> tuple[dict[str, str], dict[str, str]]:
    """The optional [container] table: its vars (overriding [vars] inside the container) and its commands
    (restart and gc required), each template checked against the vars it may use."""
    table = data.get("container")
    if table is None:
        return {}, {}
    if not isinstance(table, dict):
        bad("container", f"expected a table, got {describe_value(table)}")
        return {}, {}
    for key in table:
        if key not in CONTAINER_KEYS:
            bad(f"container.{key}", f"unknown key; expected one of: {', '.join(CONTAINER_KEYS)}")
    sub = lambda key, message: bad(f"container.{key}", message)  # noqa: E731
    own_vars = _string_table(table, "vars", sub)
    for name in own_vars:
        if name not in defaults:
            bad(f"container.vars.{name}", f"not a var of [vars] (known vars: {', '.join(defaults) or 'none'})")
    commands = _string_table(table, "commands", sub)
    for name in CONTAINER_REQUIRED_COMMANDS:
        if name not in commands:
            bad(f"container.commands.{name}", "required command is missing")
    known = {*defaults, *CONTAINER_GIVEN_VARS}
    for name, template in commands.items():
        if name not in CONTAINER_COMMANDS:
            bad(f"container.commands.{name}", f"unknown command; expected one of: {', '.join(CONTAINER_COMMANDS)}")
            continue
        _check_template(template, known, lambda m, name=name: bad(f"container.commands.{name}", m),
                        f"known: {', '.join(sorted(known))}")
    return own_vars, commands


def _check_template(template: str, known: set[str] | None, bad, hint: str) -> None:
    """Report a template that cannot be parsed, or that uses a var not in `known` (None: not checked)."""
    try:
        used = template_vars(template)
    except ValueError as exc:
        bad(str(exc))
        return
    for var in dict.fromkeys(used):
        if known is not None and var not in known:
            bad(f"uses undefined var '{var}' ({hint})")
