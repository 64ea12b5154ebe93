"""The typed configuration the rest of gcops works from, and the error that refuses a bad one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from re import Pattern

from gcops.errors import UsageError
from gcops.playbooks import Playbook
from gcops.registry.probe import ProbeCredentials

LOCAL_HOST = "local"


class ConfigError(UsageError):
    """The configuration cannot be used.

    ``problems`` holds one line per problem, each naming the file and key
    (``<file>: at '<key path>': <what is wrong>``); ``str(exc)`` joins them.
    """

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Hooks:
    """Shell commands run on the gcops machine around a run ([hooks]); None when unset."""

    before: str | None = None
    after: str | None = None
    on_error: str | None = None


@dataclass(frozen=True)
class Secret:
    """A password read from ``source`` (a file); its value never shows in a repr or a log line."""

    source: str
    value: str = field(repr=False)

    def __str__(self) -> str:
        return f"<secret from {self.source}>"


@dataclass(frozen=True)
class Settings:
    """The [gcops] table, with its defaults."""

    state_dir: Path = Path("/var/lib/gcops")
    mode: str = "readonly"
    delete_untagged: bool = False
    max_window: float = 1800.0
    parallel: int = 4
    playbook_dirs: tuple[Path, ...] = (Path("/etc/gcops/playbooks"),)
    metrics_textfile: Path | None = None
    history: str | None = None                  # a postgresql:// URL; None: SQLite in state_dir
    history_password_file: Secret | None = None


@dataclass(frozen=True)
class S3Overrides:
    """[instance.s3]: the bucket as the gcops machine reaches it; None keeps the registry config's value."""

    endpoint_url: str | None = None
    profile: str | None = None
    bucket: str | None = None
    region: str | None = None
    rootdirectory: str | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class RetentionRule:
    """One [[instance.retention]] rule; patterns are matched whole (``fullmatch``), None: not set."""

    index: int                              # position in the instance's retention array
    name_regex: Pattern[str] | None
    repositories: Pattern[str] | None = None
    name_regex_keep: Pattern[str] | None = None
    keep_n: int | None = None
    older_than: float | None = None         # seconds
    age_from: str = "pushed"                # or "created"
    allow_empty: bool = False

    @property
    def label(self) -> str:
        """How plans, refusals and logs name the rule: ``retention[0]``."""
        return f"retention[{self.index}]"


@dataclass(frozen=True)
class ContainerRef:
    """Which container runs the registry ([[instance]] engine + container, or engine + [instance.compose])."""

    engine: str                          # "docker" | "podman"
    name: str | None = None              # container name or id
    compose_project: str | None = None   # com.docker.compose.project label
    compose_service: str | None = None   # com.docker.compose.service label

    def describe(self) -> str:
        """How messages name it: `container registry` or `compose service registry of project shop`."""
        if self.name is not None:
            return f"container {self.name}"
        return f"compose service {self.compose_service} of project {self.compose_project}"


@dataclass(frozen=True)
class Instance:
    """One registry storage and the host(s) writing to it, with every setting resolved."""

    name: str
    hosts: tuple[str, ...]
    playbook: Playbook
    vars: dict[str, str]
    user: str
    port: int
    identity_file: Path | None
    known_hosts: Path
    host_key_policy: str
    sudo: bool
    connect_timeout: float
    mode: str
    delete_untagged: bool
    max_window: float
    ssh_config_file: Path | None = None        # [ssh] config_file, None when absent
    ssh_explicit: frozenset[str] = frozenset()  # user/port/identity_file set in the gcops config (win over ssh_config)
    probe: ProbeCredentials | None = None   # [instance.probe]
    s3: S3Overrides | None = None        # [instance.s3]
    retention: tuple[RetentionRule, ...] = ()
    container: ContainerRef | None = None  # engine + container / [instance.compose]
    resolved: object | None = None          # containers.Resolved, once the engine was asked (vars then host-side)


@dataclass(frozen=True)
class Config:
    """A loaded, validated configuration file."""

    path: Path
    settings: Settings
    hooks: Hooks
    instances: tuple[Instance, ...]

    def select(self, targets: Sequence[str]) -> tuple[Instance, ...]:
        """Give the instances named in ``targets`` (in that order, once each); none named gives all.

        Raises ConfigError naming every unknown target and listing the known names.
        """
        if not targets:
            return self.instances
        by_name = {instance.name: instance for instance in self.instances}
        unknown = [name for name in dict.fromkeys(targets) if name not in by_name]
        if unknown:
            known = ", ".join(by_name) or "none"
            raise ConfigError(
                [f"{self.path}: no instance named '{name}' (known instances: {known})" for name in unknown]
            )
        return tuple(by_name[name] for name in dict.fromkeys(targets))
