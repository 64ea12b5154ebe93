"""Reading TOML with one-line errors, and replacing a text file atomically."""
from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from gcops.errors import UsageError


class TextFileError(UsageError):
    """One line naming the file and what is wrong with it."""


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML document at `path`; TextFileError ("<path>: cannot read <what>: ...") otherwise."""
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise TextFileError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TextFileError(f"{path}: invalid TOML: {exc}") from None


def write_atomically(path: Path, text: str, mode: int | None = None) -> None:
    """Replace `path` with `text` in one rename (fsynced): readers see the old or the new file.

    `mode` None keeps an existing file's mode (0o644 for a new one).
    """
    path = Path(path)
    if mode is None:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
