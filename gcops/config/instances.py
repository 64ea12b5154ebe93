"""Each [[instance]] table into an Instance: hosts, playbook, vars, overrides, retention, container."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gcops.config.checking import Problems, check_table
from gcops.config.model import LOCAL_HOST, ContainerRef, Instance, RetentionRule, Settings
from gcops.config.schema import INSTANCE, INSTANCE_OVERRIDES
from gcops.playbooks import Playbook, PlaybookError, builtin_playbook_dir, find_playbook, load_playbook


class InstanceBuilder:
    """Turns each [[instance]] table into an Instance, reporting problems; shares playbook loads."""

    def __init__(self, base: Path, settings: Settings, ssh_values: dict[str, Any],
                 ssh_given: dict[str, Any], problems: Problems):
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
