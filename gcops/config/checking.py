"""Checking one TOML table against its part of the schema, collecting every problem with its key path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gcops.config.keys import REQUIRED, Invalid, Key


class Problems:
    """Collects problem lines for one config file, in the order they are found."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{self.path}: at '{where}': {message}")

    def extend(self, lines: list[str]) -> None:
        """Add lines that already name their own file and key (a playbook's problems)."""
        self.lines.extend(lines)

    def __len__(self) -> int:
        return len(self.lines)


def unknown_key(name: str, known: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key; known keys: {', '.join(known)}"


def check_table(raw: Mapping[str, Any], spec: dict[str, Key], at: str, base: Path,
                problems: Problems) -> dict[str, Any]:
    """Give the converted values of the keys present in ``raw``; report unknown, invalid and
    missing required keys. Defaults are not applied here."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{at}.{name}" if at else name
        key = spec.get(name)
        if key is None:
            problems.add(where, unknown_key(name, spec))
            continue
        try:
            values[name] = key.convert(value, base)
        except Invalid as exc:
            for subpath, message in exc.problems:
                problems.add(where + subpath, message)
    for name, key in spec.items():
        if key.default is REQUIRED and name not in raw:
            problems.add(f"{at}.{name}" if at else name, "required key is missing")
    return values
