"""Finding the config file (and saying where it was looked for), and reading only [gcops].

`gcops report` needs the history, which lives in [gcops] state_dir: it must work
with a config whose instances cannot be loaded on this machine (playbooks or
identity files that exist only on the run machine).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gcops.config.checking import Problems
from gcops.config.load import DEFAULT_CONFIG_PATH, LOCAL_CONFIG_NAME, _read_toml, _section, build_settings
from gcops.config.model import ConfigError, Settings


def config_not_found(path: Path, explicit: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """None when ``path`` (what find_config_path gave) is a file; else one line saying where gcops looked."""
    if path.is_file():
        return None
    if explicit:
        return f"--config {explicit}: no such file (start from config.sample.toml)"
    if env.get("GCOPS_CONFIG"):
        return f"$GCOPS_CONFIG={env['GCOPS_CONFIG']}: no such file (start from config.sample.toml)"
    return (f"no config file: give --config PATH or set $GCOPS_CONFIG, or create ./{LOCAL_CONFIG_NAME} "
            f"or {DEFAULT_CONFIG_PATH} (none exists); start from config.sample.toml")


def load_settings(path: Path) -> Settings:
    """The [gcops] table of the config at ``path`` with its defaults; other tables are not checked.

    Raises ConfigError (file and key) when the file cannot be read or [gcops] is invalid.
    """
    path = Path(path)
    data = _read_toml(path)
    problems = Problems(path)
    base = path.absolute().parent
    settings = build_settings(_section(data, "gcops", problems), base, problems)
    if problems.lines:
        raise ConfigError(problems.lines)
    return settings
