"""The host scripts: static POSIX `sh` files in `gcops/hostside/sh/`, run with values as arguments.

A script is never built from config values. `command(name, *args)` gives the
shell command that runs the file's text with `/bin/sh -c` and hands every value
over as a positional parameter (`"$1"`, `"$2"`, ...), each shell-quoted, so no
value can become code. Secrets never go on a command line: pass them on stdin.
"""
from __future__ import annotations

import shlex
from functools import lru_cache
from importlib import resources

from gcops.errors import StateError


class ScriptMissing(StateError):
    """No host script of that name ships with gcops."""


INCLUDE = "# include: "


def _file(name: str) -> str:
    try:
        return resources.files("gcops.hostside.sh").joinpath(f"{name}.sh").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ScriptMissing(f"no host script {name}.sh in gcops/hostside/sh") from exc


@lru_cache(maxsize=None)
def text(name: str) -> str:
    """The text of `gcops/hostside/sh/<name>.sh` as it runs: a first line `# include: <other>` is replaced
    by that script's own text (includes of includes too, each script once; still static text).
    Raises ScriptMissing."""
    return "\n".join(_expanded(name, set()))


def _expanded(name: str, seen: set[str]) -> list[str]:
    seen.add(name)
    first, _, rest = _file(name).partition("\n")
    if not first.startswith(INCLUDE):
        return [first + "\n" + rest]
    other = first[len(INCLUDE):].strip()
    return ([] if other in seen else _expanded(other, seen)) + [rest]


def command(name: str, *args: object) -> str:
    """`/bin/sh -c '<script>' gcops-<name> 'arg1' ...`: the script run with `args` as "$1", "$2", ..."""
    words = ["/bin/sh", "-c", text(name), f"gcops-{name}", *(str(a) for a in args)]
    return " ".join(shlex.quote(w) for w in words)
