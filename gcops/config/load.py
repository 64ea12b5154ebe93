"""Load a config file: TOML -> checked against the schema -> typed objects, every problem at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gcops.textfiles import TextFileError, read_toml
from gcops.config.checking import Problems, check_table, unknown_key
from gcops.config.instances import InstanceBuilder
from gcops.config.keys import defaults
from gcops.config.model import Config, ConfigError, Hooks, Instance, Settings
from gcops.config.schema import GCOPS, HOOKS, SECTIONS, SSH
from gcops.playbooks import describe_value

DEFAULT_CONFIG_PATH = Path("/etc/gcops/config.toml")
LOCAL_CONFIG_NAME = "gcops.toml"


def find_config_path(explicit: str | None, env: Mapping[str, str] = os.environ) -> Path:
    """Give the config file to use: ``--config``, else $GCOPS_CONFIG, else ./gcops.toml if it exists,
    else /etc/gcops/config.toml. The file is not checked to exist (load_config reports that)."""
    if explicit:
        return Path(explicit).expanduser()
    if env.get("GCOPS_CONFIG"):
        return Path(env["GCOPS_CONFIG"]).expanduser()
    local = Path(LOCAL_CONFIG_NAME)
    if local.is_file():
        return local.absolute()
    return DEFAULT_CONFIG_PATH


def _read_toml(path: Path) -> dict[str, Any]:
    """Give the parsed document; raise ConfigError with one line if it cannot be read or parsed."""
    try:
        return read_toml(path, "config file")
    except TextFileError as exc:
        raise ConfigError([str(exc)]) from None


def build_settings(raw: Mapping[str, Any], base: Path, problems: Problems) -> Settings:
    """[gcops] checked against the schema, with its defaults; problems reported."""
    given = check_table(raw, GCOPS, "gcops", base, problems)
    if given.get("history_password_file") is not None and not given.get("history"):
        problems.add("gcops.history_password_file", 'a password for the history database, but [gcops] history '
                     'is not a postgresql:// URL (the SQLite history takes none)')
    return Settings(**{**defaults(GCOPS, base), **given})


def _section(data: Mapping[str, Any], name: str, problems: Problems) -> dict[str, Any]:
    """Give the top-level table ``name`` ({} when absent); report it if it is not a table."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.add(name, f"expected a table ([{name}]), got {describe_value(value)}")
        return {}
    return value


def _instances(data: Mapping[str, Any], builder: InstanceBuilder, problems: Problems) -> tuple[Instance, ...]:
    """Give every valid [[instance]]; report a missing array, non-tables and duplicate names."""
    raw_instances = data.get("instance")
    if raw_instances is None:
        problems.add("instance", "at least one [[instance]] table is required")
        return ()
    if not isinstance(raw_instances, list):
        got = describe_value(raw_instances)
        problems.add("instance", f"expected an array of tables ([[instance]]), got {got}")
        return ()
    if not raw_instances:
        problems.add("instance", "at least one [[instance]] table is required")
    instances = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(raw_instances):
        at = f"instance[{index}]"
        if not isinstance(raw, dict):
            problems.add(at, f"expected a table, got {describe_value(raw)}")
            continue
        name = raw.get("name")
        if isinstance(name, str):
            if name in first_index:
                also = f"instance[{first_index[name]}].name"
                problems.add(f"{at}.name", f"duplicate instance name '{name}' (also at {also})")
            else:
                first_index[name] = index
        instance = builder.build(raw, at)
        if instance is not None:
            instances.append(instance)
    return tuple(instances)


def load_config(path: Path) -> Config:
    """Give the validated configuration in ``path``.

    Raises ConfigError listing every problem at once, one line each naming the
    file and key path. Nothing outside the gcops machine is contacted.
    """
    path = Path(path)
    data = _read_toml(path)
    base = path.absolute().parent
    problems = Problems(path)
    for name in data:
        if name not in SECTIONS:
            problems.add(name, unknown_key(name, tuple(SECTIONS)))

    settings = build_settings(_section(data, "gcops", problems), base, problems)
    ssh_given = check_table(_section(data, "ssh", problems), SSH, "ssh", base, problems)
    ssh_values = {**defaults(SSH, base), **ssh_given}
    hooks_given = check_table(_section(data, "hooks", problems), HOOKS, "hooks", base, problems)
    hooks = Hooks(**{**defaults(HOOKS, base), **hooks_given})
    builder = InstanceBuilder(base, settings, ssh_values, ssh_given, problems)
    instances = _instances(data, builder, problems)

    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(path=path, settings=settings, hooks=hooks, instances=instances)
