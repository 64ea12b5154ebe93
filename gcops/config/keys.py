"""The building blocks of the configuration schema: a `Key` (type, default, check, doc), the
builders of the kinds of value gcops takes (text, durations, ages, paths, hosts, regexes, tables of
strings), and `defaults`. schema.py assembles them into the tables of every key gcops accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcops.errors import UsageError
from gcops.playbooks import CONTROL_CHARS, describe_value


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Host names, IPv4 and IPv6 addresses; no user@, no spaces, no leading '-'
# (which ssh-like tools would take for an option).
HOST_PATTERN = re.compile(r"(?!-)[A-Za-z0-9_.:%\[\]-]+")
USER_PATTERN = re.compile(r"(?!-)[^\s\x00-\x1f\x7f]+")
DURATION_PATTERN = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

NAME_HINT = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
HOST_HINT = "expected a host name or IP address (set the user in 'user' and the port in 'port')"
USER_HINT = "expected a user name without spaces, not starting with '-'"


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


REQUIRED = _Marker("REQUIRED")  # the key must be set
ABSENT = _Marker("ABSENT")  # no default: inherited from another table, or optional


class Invalid(UsageError):
    """A value is wrong; ``subpath`` (like ``[2]`` or ``.name``) narrows the key path.

    ``problems`` holds (subpath, message) for every wrong part of the value:
    one item for a scalar, possibly several for an array or table.
    """

    def __init__(self, message: str, subpath: str = "", problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.subpath = subpath
        self.problems = problems if problems is not None else [(subpath, message)]


@dataclass(frozen=True)
class Key:
    """One config key: the TOML types it accepts, how it converts, its default."""

    expected: str  # for messages: "expected <expected>, got <value>"
    types: tuple[type, ...]
    parse: Callable[[Any, Path], Any]
    default: Any = ABSENT
    doc: str = ""

    def convert(self, value: Any, base: Path) -> Any:
        """Give the typed value; raise Invalid saying what is wrong. ``base`` resolves relative paths."""
        # type() rather than isinstance(): TOML booleans must not pass as integers.
        if type(value) not in self.types:
            raise Invalid(f"expected {self.expected}, got {describe_value(value)}")
        return self.parse(value, base)


def parse_duration(text: str) -> float:
    """Give the seconds in a DURATION like ``90s``, ``30m``, ``2h`` or ``1h30m``.

    Raises ValueError saying what a duration looks like, or that it must be > 0.
    """
    match = DURATION_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit, like '90s', '30m', '2h' or '1h30m'"
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = float(hours * 3600 + minutes * 60 + seconds)
    if total <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return total


def resolve_path(text: str, base: Path) -> Path:
    """Give ``text`` as a path: ``~`` expanded, relative paths taken from ``base``."""
    if not text:
        raise Invalid("expected a path, got empty string")
    if "\0" in text:
        raise Invalid("a path cannot contain a NUL character")
    try:
        path = Path(text).expanduser()
    except RuntimeError as exc:  # "~someone" with no such user, or no home directory
        raise Invalid(f"cannot expand {text!r}: {exc}") from None
    return path if path.is_absolute() else base / path


def checked_text(value: str, pattern: re.Pattern[str] | None, hint: str) -> str:
    if pattern is not None and not pattern.fullmatch(value):
        raise Invalid(f"invalid value {value!r}: {hint}")
    if "\0" in value:
        raise Invalid("contains a NUL character")
    return value


def text(default: Any = ABSENT, *, pattern: re.Pattern[str] | None = None, hint: str = "",
         empty_is_none: bool = False, doc: str = "") -> Key:
    """A string, optionally matching ``pattern``; ``""`` gives None when ``empty_is_none``."""

    def parse(value: str, base: Path) -> str | None:
        if empty_is_none and value == "":
            return None
        return checked_text(value, pattern, hint)

    return Key("a string", (str,), parse, default, doc)


def boolean(default: Any, doc: str = "") -> Key:
    return Key("a boolean (true or false)", (bool,), lambda value, base: value, default, doc)


def integer(default: Any, *, low: int, high: int | None = None, doc: str = "") -> Key:
    """An integer in ``low..high`` (no upper bound when ``high`` is None)."""
    bounds = f"from {low} to {high}" if high is not None else f"{low} or more"

    def parse(value: int, base: Path) -> int:
        if value < low or (high is not None and value > high):
            raise Invalid(f"expected an integer {bounds}, got {value}")
        return value

    return Key(f"an integer {bounds}", (int,), parse, default, doc)


def choice(options: tuple[str, ...], default: Any, doc: str = "") -> Key:
    listed = " or ".join(repr(option) for option in options)

    def parse(value: str, base: Path) -> str:
        if value not in options:
            raise Invalid(f"expected {listed}, got {value!r}")
        return value

    return Key(listed, (str,), parse, default, doc)


def _text_key(kind: str, parser, default: Any, doc: str) -> Key:
    """A key whose string value `parser` turns into a value, its ValueError into Invalid."""
    def parse(value: str, base: Path) -> Any:
        try:
            return parser(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None

    return Key(kind, (str,), parse, default, doc)


def duration(default: Any, doc: str = "") -> Key:
    return _text_key("a duration string like '90s', '30m' or '2h'", parse_duration, default, doc)


def path(default: Any, *, empty_is_none: bool = False, doc: str = "") -> Key:
    """A path string; ``~`` expanded, relative to the config file's folder; ``""`` gives None when allowed."""

    def parse(value: str, base: Path) -> Path | None:
        if empty_is_none and value == "":
            return None
        return resolve_path(value, base)

    return Key("a path string", (str,), parse, default, doc)


def _each(items: dict[str, Any], convert: Callable[[Any], Any]) -> dict[str, Any]:
    """Convert every item of an array or table (keyed by subpath); raise one Invalid naming
    every failing item."""
    converted, problems = {}, []
    for subpath, value in items.items():
        try:
            converted[subpath] = convert(value)
        except Invalid as exc:
            problems.append((subpath, str(exc)))
    if problems:
        raise Invalid(problems[0][1], problems[0][0], problems)
    return converted


def _indexed(values: list[Any]) -> dict[str, Any]:
    return {f"[{index}]": value for index, value in enumerate(values)}


def _string_item(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {describe_value(value)}")
    return value


def path_list(default: Any, doc: str = "") -> Key:
    def parse(values: list[Any], base: Path) -> tuple[Path, ...]:
        return tuple(_each(_indexed(values), lambda value: resolve_path(_string_item(value), base)).values())

    return Key("an array of path strings", (list,), parse, default, doc)


def host_list(doc: str = "") -> Key:
    """One or more distinct host names."""

    def parse(values: list[Any], base: Path) -> tuple[str, ...]:
        if not values:
            raise Invalid("expected at least one host, got an empty array")
        check = lambda value: checked_text(_string_item(value), HOST_PATTERN, HOST_HINT)  # noqa: E731
        hosts = list(_each(_indexed(values), check).values())
        for index, host in enumerate(hosts):
            if host in hosts[:index]:
                raise Invalid(f"host {host!r} is listed twice", f"[{index}]")
        return tuple(hosts)

    return Key("an array of host names", (list,), parse, ABSENT, doc)


def control_char_problem(value: str) -> str | None:
    """Why a var value is refused, or None: a control character (newline, tab, ESC...) could end a
    line of a host-side record or a script's argument list, so vars never carry one."""
    match = CONTROL_CHARS.search(value)
    if match is None:
        return None
    return f"contains a control character ({match.group()!r}); vars are single-line text"


def _var_text(value: str) -> str:
    problem = control_char_problem(value)
    if problem:
        raise Invalid(problem)
    return value


def string_table(doc: str = "") -> Key:
    def parse(table: dict[str, Any], base: Path) -> dict[str, str]:
        strings = _each({f".{name}": value for name, value in table.items()},
                        lambda value: _var_text(checked_text(_string_item(value), None, "")))
        return {subpath[1:]: value for subpath, value in strings.items()}

    return Key("a table of strings", (dict,), parse, ABSENT, doc)


AGE_PATTERN = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_age(text: str) -> float:
    """Give the seconds in an AGE like ``14d``, ``2w``, ``36h`` or ``1d12h`` (a DURATION that also takes
    days and weeks). Raises ValueError saying what an age looks like, or that it must be > 0."""
    match = AGE_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match or not any(match.groups()):
        raise ValueError(f"invalid age {text!r}: expected a number with a unit, like '14d', '2w', '36h' or '1d12h'")
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = float((((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds)
    if total <= 0:
        raise ValueError(f"invalid age {text!r}: must be longer than zero")
    return total


def age(default: Any = ABSENT, doc: str = "") -> Key:
    return _text_key("an age string like '14d', '2w' or '36h'", parse_age, default, doc)


def regex(default: Any = ABSENT, doc: str = "") -> Key:
    """A regular expression, matched against the whole name (anchored, like GitLab's RE2 ``\\A...\\z``)."""

    def parse(value: str, base: Path) -> re.Pattern[str] | None:
        if value == "":
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            raise Invalid(f"invalid regular expression {value!r}: {exc}") from None

    return Key("a regular expression string", (str,), parse, default, doc)


def defaults(spec: dict[str, Key], base: Path) -> dict[str, Any]:
    """Give every key of ``spec`` that has a default, converted like a user's value."""
    return {
        name: key.convert(key.default, base)
        for name, key in spec.items()
        if key.default is not REQUIRED and key.default is not ABSENT
    }
