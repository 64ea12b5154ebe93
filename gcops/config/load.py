"""Load a config file: TOML -> checked against the schema -> typed objects, every problem at once."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gcops.textfiles import TextFileError, read_toml
from gcops.config.model import (LOCAL_HOST, Config, ConfigError, ContainerRef, Hooks, Instance, RetentionRule,
                                 Settings)
from gcops.config.schema import (
    GCOPS, HOOKS, INSTANCE, INSTANCE_OVERRIDES, REQUIRED, SECTIONS, SSH, Invalid, Key, defaults,
)
from gcops.playbooks import (
    Playbook, PlaybookError, builtin_playbook_dir, describe_value, find_playbook, load_playbook,
)

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


class _Problems:
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


def _read_toml(path: Path) -> dict[str, Any]:
    """Give the parsed document; raise ConfigError with one line if it cannot be read or parsed."""
    try:
        return read_toml(path, "config file")
    except TextFileError as exc:
        raise ConfigError([str(exc)]) from None


def _unknown_key(name: str, known: Mapping[str, Any] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return f"unknown key; known keys: {', '.join(known)}"


def check_table(raw: Mapping[str, Any], spec: dict[str, Key], at: str, base: Path,
                problems: _Problems) -> dict[str, Any]:
    """Give the converted values of the keys present in ``raw``; report unknown, invalid and
    missing required keys. Defaults are not applied here."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"{at}.{name}" if at else name
        key = spec.get(name)
        if key is None:
            problems.add(where, _unknown_key(name, spec))
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


def build_settings(raw: Mapping[str, Any], base: Path, problems: _Problems) -> Settings:
    """[gcops] checked against the schema, with its defaults; problems reported."""
    given = check_table(raw, GCOPS, "gcops", base, problems)
    if given.get("history_password_file") is not None and not given.get("history"):
        problems.add("gcops.history_password_file", 'a password for the history database, but [gcops] history '
                     'is not a postgresql:// URL (the SQLite history takes none)')
    return Settings(**{**defaults(GCOPS, base), **given})


def _section(data: Mapping[str, Any], name: str, problems: _Problems) -> dict[str, Any]:
    """Give the top-level table ``name`` ({} when absent); report it if it is not a table."""
    value = data.get(name, {})
    if not isinstance(value, dict):
        problems.add(name, f"expected a table ([{name}]), got {describe_value(value)}")
        return {}
    return value


class _InstanceBuilder:
    """Turns each [[instance]] table into an Instance, reporting problems; shares playbook loads."""

    def __init__(self, base: Path, settings: Settings, ssh_values: dict[str, Any],
                 ssh_given: dict[str, Any], problems: _Problems):
        self.base = base
        self.settings = settings
        self.ssh_values = ssh_values
        self.ssh_given = ssh_given
        self.problems = problems
        self.playbooks: dict[str, Playbook | None] = {}
        self.playbook_failures: dict[str, str] = {}  # playbook name -> why it cannot be used
        self.reported: set[str] = set()  # key paths shared by instances, reported once

    def build(self, raw: dict[str, Any], at: str) -> Instance | None:
        """Give the Instance for ``raw`` (found at key path ``at``), or None if it has problems."""
        before = len(self.problems)
        given = check_table(raw, INSTANCE, at, self.base, self.problems)
        hosts = self._hosts(raw, given, at)
        playbook = self._playbook(given.get("playbook"), at)
        vars = self._vars(playbook, raw.get("vars"), given.get("vars", {}), at)
        merged = {
            **self.ssh_values,
            **{name: getattr(self.settings, name) for name in INSTANCE_OVERRIDES},
            **given,
        }
        local = hosts == (LOCAL_HOST,)
        identity_file = self._identity_file(given, merged, at, local)
        if merged["mode"] == "concurrent" and merged["delete_untagged"]:
            self.problems.add(f"{at}.{'mode' if 'mode' in given else 'delete_untagged'}",
                              'mode = "concurrent" cannot be combined with delete_untagged = true '
                              '(untagged manifests are only known while writes are refused); use mode = "readonly"')
        container = self._container(raw, given, hosts, playbook, at)
        if len(self.problems) > before or playbook is None or hosts is None:
            return None
        return Instance(
            name=given["name"], hosts=hosts, playbook=playbook, vars=vars,
            user=merged["user"], port=merged["port"], identity_file=identity_file,
            known_hosts=merged["known_hosts"], host_key_policy=merged["host_key_policy"],
            sudo=merged["sudo"], connect_timeout=merged["connect_timeout"], mode=merged["mode"],
            delete_untagged=merged["delete_untagged"], max_window=merged["max_window"],
            ssh_config_file=self._ssh_config_file(given, merged, at, local),
            ssh_explicit=frozenset(k for k in ("user", "port", "identity_file") if k in given or k in self.ssh_given),
            probe=given.get("probe"),
            retention=tuple(RetentionRule(**rule) for rule in given.get("retention", ())),
            s3=given.get("s3"),
            container=container,
        )

    def _container(self, raw: Mapping[str, Any], given: Mapping[str, Any], hosts, playbook: Playbook | None,
                   at: str) -> ContainerRef | None:
        """The container an instance names (engine with exactly one of container / [instance.compose])."""
        named = [k for k in ("container", "compose") if k in raw]
        if "engine" not in raw:
            for k in named:
                self.problems.add(f"{at}.{k}", 'set engine = "docker" or "podman" too: which engine runs it')
            return None
        if not named:
            self.problems.add(f"{at}.engine", 'name the container: container = "NAME", or [instance.compose] '
                                              "project and service")
            return None
        if len(named) == 2:
            self.problems.add(f"{at}.compose", "set either container or [instance.compose], not both")
            return None
        if hosts is not None and len(hosts) > 1:
            self.problems.add(f"{at}.hosts", "a containerised registry has one engine host: set host, not hosts")
        if playbook is not None and not playbook.container_commands:
            self.problems.add(f"{at}.playbook", f"playbook '{playbook.name}' ({playbook.path}) has no [container] "
                                                "table: it does not say how to run in a container")
        if "engine" not in given or named[0] not in given:
            return None     # a wrong value, already reported
        if named[0] == "container":
            return ContainerRef(engine=given["engine"], name=given["container"])
        project, service = given["compose"]
        return ContainerRef(engine=given["engine"], compose_project=project, compose_service=service)

    def _ssh_config_file(self, given: Mapping[str, Any], merged: Mapping[str, Any], at: str,
                         local: bool) -> Path | None:
        """The OpenSSH client config to honour: a set one must be readable; the unset default only if present."""
        path = merged["config_file"]
        where = f"{at}.config_file" if "config_file" in given else "ssh.config_file" if "config_file" in self.ssh_given else None
        if path is None or local:
            return None
        if where is None:
            return path if path.is_file() else None
        reason = _readable(path)
        if reason is not None and where not in self.reported:
            self.reported.add(where)
            self.problems.add(where, f"cannot read ssh config file {path}: {reason}")
        return path

    def _hosts(self, raw: Mapping[str, Any], given: Mapping[str, Any], at: str) -> tuple[str, ...] | None:
        """Give the instance's hosts from exactly one of host/hosts; 'local' only alone."""
        present = [name for name in ("host", "hosts") if name in raw]
        if not present:
            self.problems.add(f"{at}.host", 'required key is missing: set host = "..." or hosts = ["...", ...]')
            return None
        if len(present) == 2:
            self.problems.add(f"{at}.hosts", "set either host or hosts, not both")
            return None
        if present[0] not in given:
            return None  # already reported by the schema
        hosts = (given["host"],) if present[0] == "host" else given["hosts"]
        if LOCAL_HOST in hosts and len(hosts) > 1:
            self.problems.add(f"{at}.hosts", f"'{LOCAL_HOST}' can only be an instance's single host")
        return hosts

    def _playbook(self, name: str | None, at: str) -> Playbook | None:
        """Give the named playbook, loading each file once; report a missing or invalid one."""
        if name is None:
            return None
        if name not in self.playbooks:
            self.playbooks[name] = self._load_playbook(name)
        playbook = self.playbooks[name]
        if playbook is None:
            self.problems.add(f"{at}.playbook", self.playbook_failures[name])
        return playbook

    def _load_playbook(self, name: str) -> Playbook | None:
        """Give the named playbook; on failure record why (its own problem lines are reported once)."""
        path = find_playbook(name, self.settings.playbook_dirs)
        if path is None:
            searched = (*self.settings.playbook_dirs, builtin_playbook_dir())
            available = sorted({p.stem for folder in searched if folder.is_dir() for p in folder.glob("*.toml")})
            hint = "; give the name without .toml" if name.endswith(".toml") else ""
            self.playbook_failures[name] = (
                f"no playbook '{name}' (searched {', '.join(str(d) for d in searched)}; "
                f"available: {', '.join(available) or 'none'}){hint}"
            )
            return None
        try:
            return load_playbook(path)
        except PlaybookError as exc:
            self.playbook_failures[name] = f"playbook '{name}' ({path}) is invalid: see the lines about {path}"
            # The playbook's own lines name their file and key; report them once, not per instance.
            self.problems.extend(exc.problems)
            return None

    def _vars(self, playbook: Playbook | None, raw: Any, overrides: Mapping[str, str],
              at: str) -> dict[str, str]:
        """Give the playbook's vars updated with the instance's; report a var the playbook lacks
        (checking the raw table, so a bad value does not hide an unknown name)."""
        if playbook is None:
            return dict(overrides)
        for name in raw if isinstance(raw, dict) else ():
            if name not in playbook.vars:
                known = ", ".join(playbook.vars) or "none"
                message = f"playbook '{playbook.name}' has no var '{name}' (its vars: {known})"
                self.problems.add(f"{at}.vars.{name}", message)
        return {**playbook.vars, **{k: v for k, v in overrides.items() if k in playbook.vars}}

    def _identity_file(self, given: Mapping[str, Any], merged: Mapping[str, Any], at: str,
                       local: bool) -> Path | None:
        """Give the key file SSH should use. An explicitly set one must be readable (for SSH
        instances); the unset default is used only if it exists, else None (agent, default keys)."""
        if "identity_file" in given:
            where = f"{at}.identity_file"
        elif "identity_file" in self.ssh_given:
            where = "ssh.identity_file"
        else:
            default = merged["identity_file"]
            return default if default is not None and _readable(default) is None else None
        path = merged["identity_file"]
        if path is None or local:
            return path
        reason = _readable(path)
        if reason is not None and where not in self.reported:
            self.reported.add(where)
            needed_by = given.get("name", at)
            message = f"cannot read identity file {path}: {reason} (needed by instance '{needed_by}')"
            self.problems.add(where, message)
        return path


def _readable(path: Path) -> str | None:
    """Give None if ``path`` is a readable file, else why not."""
    if path.is_dir():
        return "is a directory"
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _instances(data: Mapping[str, Any], builder: _InstanceBuilder, problems: _Problems) -> tuple[Instance, ...]:
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
    problems = _Problems(path)
    for name in data:
        if name not in SECTIONS:
            problems.add(name, _unknown_key(name, tuple(SECTIONS)))

    settings = build_settings(_section(data, "gcops", problems), base, problems)
    ssh_given = check_table(_section(data, "ssh", problems), SSH, "ssh", base, problems)
    ssh_values = {**defaults(SSH, base), **ssh_given}
    hooks_given = check_table(_section(data, "hooks", problems), HOOKS, "hooks", base, problems)
    hooks = Hooks(**{**defaults(HOOKS, base), **hooks_given})
    builder = _InstanceBuilder(base, settings, ssh_values, ssh_given, problems)
    instances = _instances(data, builder, problems)

    if problems.lines:
        raise ConfigError(problems.lines)
    return Config(path=path, settings=settings, hooks=hooks, instances=instances)
