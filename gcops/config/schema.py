"""The configuration schema: every key gcops accepts, its type, its default and its check.

These tables are the single source of truth. ``load.py`` walks them to
validate and convert a config file; ``config.sample.toml`` is tested against
them. Defaults are written as they would be in TOML and parsed like a user's
value, so a default can never bypass a check.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from gcops.config.keys import (
    ABSENT, HOST_HINT, HOST_PATTERN, NAME_HINT, NAME_PATTERN, REQUIRED, USER_HINT, USER_PATTERN, Invalid, Key,
    checked_text, age, boolean, choice, duration, host_list, integer, path, path_list, regex, resolve_path,
    string_table, text,
)
from gcops.playbooks import describe_value


URL_PATTERN = re.compile(r"https?://[^\s/?#@]+(?::\d+)?/?")


def s3_table(doc: str = "") -> Key:
    """[instance.s3]: every key named on error; gives an S3Overrides."""
    from gcops.config.model import S3Overrides

    spec = {
        "endpoint_url": text(ABSENT, pattern=URL_PATTERN, hint="expected http(s)://host[:port], no credentials"),
        "profile": text(ABSENT, empty_is_none=True),
        "bucket": text(ABSENT, pattern=re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"), hint="expected an S3 bucket name"),
        "region": text(ABSENT, pattern=re.compile(r"[a-z0-9-]+"), hint="expected a region like 'us-east-1'"),
        "rootdirectory": text(ABSENT),
        "concurrency": integer(ABSENT, low=1, high=256),
    }

    def parse(table: dict[str, Any], base: Path) -> S3Overrides:
        problems, values = [], {}
        for name, value in table.items():
            key = spec.get(name)
            if key is None:
                problems.append((f".{name}", f"unknown key; known keys: {', '.join(spec)}"))
                continue
            try:
                values[name] = key.convert(value, base)
            except Invalid as exc:
                problems.append((f".{name}", str(exc)))
        if problems:
            raise Invalid(problems[0][1], problems[0][0], problems)
        return S3Overrides(**values)

    return Key("a table ([instance.s3])", (dict,), parse, ABSENT, doc)


REPOSITORY_PATTERN = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
PROBE_KEYS = ("username", "password", "password_file", "repository", "ca_file")


def _read_secret(path: Path) -> str:
    """The first line of a secret file (the password), without its line end. Raises Invalid."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}", ".password_file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{path} is not UTF-8 text", ".password_file") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise Invalid(f"{path} is empty: expected the password on its first line", ".password_file")
    return lines[0]


def probe_table(doc: str = "") -> Key:
    """[instance.probe]: username and exactly one of password / password_file; optional repository, ca_file."""
    from gcops.registry.probe import DEFAULT_REPOSITORY, ProbeCredentials

    def parse(table: dict[str, Any], base: Path) -> ProbeCredentials:
        problems = [(f".{k}", f"unknown key; known keys: {', '.join(PROBE_KEYS)}") for k in table if k not in PROBE_KEYS]
        for k in ("username", "password", "password_file", "repository", "ca_file"):
            if k in table and not isinstance(table[k], str):
                shown = type(table[k]).__name__ if k == "password" else describe_value(table[k])  # never the secret
                problems.append((f".{k}", f"expected a string, got {shown}"))
        if problems:
            raise Invalid(problems[0][1], problems[0][0], problems)
        if not table.get("username"):
            raise Invalid("required key is missing", ".username")
        checked_text(table["username"], USER_PATTERN, USER_HINT)
        given = [k for k in ("password", "password_file") if k in table]
        if len(given) != 1:
            raise Invalid("set exactly one of password or password_file", ".password")
        if given[0] == "password":
            if not table["password"] or "\0" in table["password"]:
                raise Invalid("expected a non-empty password", ".password")
            password = table["password"]
        else:
            try:
                password = _read_secret(resolve_path(table["password_file"], base))
            except Invalid as exc:
                raise Invalid(str(exc), ".password_file") from None
        repository = table.get("repository", DEFAULT_REPOSITORY)
        if not REPOSITORY_PATTERN.fullmatch(repository):
            raise Invalid(f"invalid repository {repository!r}: expected a registry repository name "
                          "like 'group/project' (lower case)", ".repository")
        ca_file = None
        if table.get("ca_file"):
            ca_file = resolve_path(table["ca_file"], base)
            if not ca_file.is_file():
                raise Invalid(f"cannot read {ca_file}: no such file", ".ca_file")
        return ProbeCredentials(table["username"], password, repository, ca_file)

    return Key("a table ([instance.probe])", (dict,), parse, ABSENT, doc)


HISTORY_SCHEMES = ("postgresql", "postgres")


def history_url(doc: str = "") -> Key:
    """[gcops] history: "" (SQLite in state_dir) or a postgresql:// URL without a password
    (the value is never repeated in a message: it might hold one)."""
    from urllib.parse import parse_qs, urlsplit

    def parse(value: str, base: Path) -> str | None:
        if value == "":
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise Invalid("expected a postgresql://user@host:port/database URL, or \"\" for SQLite in state_dir "
                          "(this one cannot be parsed)") from None
        if parts.scheme not in HISTORY_SCHEMES or any(c in value for c in "\0\n\r\t "):
            raise Invalid("expected a postgresql://user@host:port/database URL, or \"\" for SQLite in state_dir")
        if parts.password is not None or "password" in parse_qs(parts.query):
            raise Invalid("the URL carries a password, which gcops refuses (it would show wherever the URL "
                          "does): put it in history_password_file or $GCOPS_HISTORY_PASSWORD instead")
        return value

    return Key("a string", (str,), parse, "", doc)


def secret_file(doc: str = "") -> Key:
    """A file whose first line is a password; read when the config is loaded (gives a Secret)."""
    from gcops.config.model import Secret

    def parse(value: str, base: Path) -> Secret | None:
        if value == "":
            return None
        where = resolve_path(value, base)
        try:
            return Secret(str(where), _read_secret(where))
        except Invalid as exc:
            raise Invalid(str(exc)) from None

    return Key("a path string", (str,), parse, "", doc)


GCOPS: dict[str, Key] = {
    "state_dir": path("/var/lib/gcops", doc="history database, journal, locks"),
    "mode": choice(("readonly", "stop", "concurrent"), "readonly",
                   doc="how writers are kept out during GC; concurrent: only for the final delta and the sweep"),
    "delete_untagged": boolean(False, doc="also delete manifests no tag points to"),
    "max_window": duration("30m", doc="longest read-only window; past it GC is stopped and service restored"),
    "parallel": integer(4, low=1, doc="instances worked at once"),
    "playbook_dirs": path_list(["/etc/gcops/playbooks"], doc="searched before the built-in playbooks"),
    "metrics_textfile": path("", empty_is_none=True, doc="Prometheus textfile; empty: none"),
    "history": history_url(doc='where runs are recorded: "" = SQLite in state_dir; "postgresql://user@host/db" '
                               "= a PostgreSQL database shared by several gcops machines (no password in it)"),
    "history_password_file": secret_file(doc="the PostgreSQL password on its first line; empty: "
                                             "$GCOPS_HISTORY_PASSWORD, else libpq's own (PGPASSWORD, ~/.pgpass)"),
}

SSH: dict[str, Key] = {
    "user": text("root", pattern=USER_PATTERN, hint=USER_HINT),
    "port": integer(22, low=1, high=65535),
    "identity_file": path("~/.ssh/id_ed25519", empty_is_none=True, doc="empty: agent and default keys only"),
    "known_hosts": path("~/.ssh/known_hosts"),
    "host_key_policy": choice(("strict", "accept-new"), "strict"),
    "sudo": boolean(False),
    "connect_timeout": duration("10s"),
    "config_file": path("~/.ssh/config", empty_is_none=True,
                        doc="OpenSSH client config (Host, HostName, User, Port, IdentityFile, ProxyJump); "
                            "a missing default file is fine; empty: none"),
}

HOOKS: dict[str, Key] = {
    "before": text("", empty_is_none=True, doc="shell command run on the gcops machine before a run"),
    "after": text("", empty_is_none=True, doc="shell command run on the gcops machine after a run"),
    "on_error": text("", empty_is_none=True, doc="shell command run on the gcops machine when a run fails"),
}

# One [[instance.retention]] rule (GitLab cleanup-policy semantics, see gcops/retention/policy.py).
RETENTION: dict[str, Key] = {
    "repositories": regex(".*", doc="which repositories the rule covers (anchored; default every one)"),
    "name_regex": regex(REQUIRED, doc="tags that may be deleted (anchored)"),
    "name_regex_keep": regex("", doc="tags never deleted (anchored; keep wins); empty: none"),
    "keep_n": integer(ABSENT, low=0, doc="the newest N candidates per repository are kept"),
    "older_than": age(ABSENT, doc="only candidates older than this are deleted"),
    "age_from": choice(("pushed", "created"), "pushed", doc="push time in the storage, or the image config's created"),
    "allow_empty": boolean(False, doc="may this rule leave a repository with no tag?"),
}


def retention_rules(doc: str = "") -> Key:
    """An array of retention tables, each checked against RETENTION; every problem is reported."""

    def parse(values: list[Any], base: Path) -> tuple[dict[str, Any], ...]:
        rules, problems = [], []
        for index, raw in enumerate(values):
            at = f"[{index}]"
            if not isinstance(raw, dict):
                problems.append((at, f"expected a table ([[instance.retention]]), got {describe_value(raw)}"))
                continue
            rule: dict[str, Any] = {"index": index}
            for name, value in raw.items():
                key = RETENTION.get(name)
                if key is None:
                    close = difflib.get_close_matches(name, list(RETENTION), n=1)
                    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(RETENTION)}"
                    problems.append((f"{at}.{name}", f"unknown key ({hint})"))
                    continue
                try:
                    rule[name] = key.convert(value, base)
                except Invalid as exc:
                    problems.extend((f"{at}.{name}{sub}", message) for sub, message in exc.problems)
            for name, key in RETENTION.items():
                if key.default is REQUIRED and name not in raw:
                    problems.append((f"{at}.{name}", "required key is missing"))
                elif name not in rule and key.default is not ABSENT and key.default is not REQUIRED:
                    rule[name] = key.convert(key.default, base)
            rules.append(rule)
        if problems:
            raise Invalid(problems[0][1], problems[0][0], problems)
        return tuple(rules)

    return Key("an array of tables ([[instance.retention]])", (list,), parse, ABSENT, doc)


def compose_table(doc: str = "") -> Key:
    """[instance.compose]: project and service, the labels compose puts on the container it runs."""

    def parse(table: dict[str, Any], base: Path) -> tuple[str, str]:
        problems = [(f".{k}", "unknown key; known keys: project, service") for k in table
                    if k not in ("project", "service")]
        values = {}
        for k in ("project", "service"):
            if k not in table:
                problems.append((f".{k}", "required key is missing"))
            elif not isinstance(table[k], str):
                shown = type(table[k]).__name__ if k == "password" else describe_value(table[k])  # never the secret
                problems.append((f".{k}", f"expected a string, got {shown}"))
            elif not NAME_PATTERN.fullmatch(table[k]):
                problems.append((f".{k}", f"invalid value {table[k]!r}: {NAME_HINT}"))
            else:
                values[k] = table[k]
        if problems:
            raise Invalid(problems[0][1], problems[0][0], problems)
        return values["project"], values["service"]

    return Key("a table ([instance.compose])", (dict,), parse, ABSENT, doc)


# [gcops] keys an instance may override; every [ssh] key may be overridden too.
INSTANCE_OVERRIDES = ("mode", "delete_untagged", "max_window")

INSTANCE: dict[str, Key] = {
    "name": text(REQUIRED, pattern=NAME_PATTERN, hint=NAME_HINT),
    "host": text(ABSENT, pattern=HOST_PATTERN, hint=HOST_HINT, doc='"local": this machine, no SSH'),
    "hosts": host_list(doc="several writers of one storage"),
    "playbook": text(REQUIRED, pattern=NAME_PATTERN, hint="expected a playbook name (a file name without .toml)"),
    "vars": string_table(doc="overrides of the playbook's vars"),
    "s3": s3_table(doc="registries on S3-compatible storage: the bucket as this machine reaches it"),
    "engine": choice(("docker", "podman"), ABSENT, doc="the registry runs in a container of this engine"),
    "container": text(ABSENT, pattern=NAME_PATTERN, hint="expected a container name or id", doc="its name or id"),
    "compose": compose_table(doc="or the compose project and service whose container it is"),
    **SSH,
    **{key: GCOPS[key] for key in INSTANCE_OVERRIDES},
    "probe": probe_table(doc="credentials with push rights, to verify read-only behind authentication"),
    "retention": retention_rules(doc="cleanup policy rules applied before GC"),
}

# Top-level tables; "instance" is an array of tables.
SECTIONS: dict[str, dict[str, Key]] = {"gcops": GCOPS, "ssh": SSH, "hooks": HOOKS, "instance": INSTANCE}
