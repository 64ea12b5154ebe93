"""The one reader of what the host scripts print: `key=value` lines (other lines are ignored).

Every host script answers this way; every parser of their output reads it here.
"""
from __future__ import annotations


def parse_kv_all(text: str) -> dict[str, list[str]]:
    """Every value of every key, in the order printed (a key may repeat: `removed=`, `gc_error=`)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key and "\t" not in key:
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def parse_kv(text: str) -> dict[str, str]:
    """key=value lines, the last value of a key winning."""
    return {key: values[-1] for key, values in parse_kv_all(text).items()}


def as_int(value: str | None) -> int | None:
    """A whole number, or None when the value is missing or not one."""
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def as_float(value: str | None) -> float | None:
    """A number, or None when the value is missing or not one."""
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def tail(text: str, n: int = 3) -> str:
    """The last `n` non-empty lines of `text`, joined for one error line."""
    lines = [line for line in text.splitlines() if line.strip()][-n:]
    return " | ".join(lines) if lines else "no output"
