"""REGISTRY_* environment variables applied to a registry config the way distribution applies them (pure).

distribution (configuration/parser.go) reads every variable named REGISTRY_<PATH>,
in the order of their names, splits PATH at `_` into keys (matched to existing
keys without regard to case, else created in lower case) and sets the value there,
decoded as YAML: REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data sets
storage.filesystem.rootdirectory, REGISTRY_STORAGE=s3 replaces the whole storage
section by an s3 driver with no parameters (the `storage` section's own YAML
form), REGISTRY_HTTP_ADDR=:5001 the listen address. Variables naming no section
of the config (REGISTRY_CONFIGURATION_PATH, ...) are ignored, as the registry does.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Mapping

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

PREFIX = "REGISTRY_"
SECTIONS = ("version", "log", "loglevel", "storage", "auth", "middleware", "reporting", "http", "notifications",
            "redis", "health", "proxy", "validation", "policy", "compatibility", "catalog", "database", "gc",
            "profiling", "migration")
READ_ONLY_PATH = ("storage", "maintenance", "readonly")


def overrides(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of `env` the registry applies to its config, by name."""
    out = {}
    for name, value in env.items():
        if name.startswith(PREFIX) and name != PREFIX:
            head = name[len(PREFIX):].split("_", 1)[0].lower()
            if head in SECTIONS:
                out[name] = value
    return dict(sorted(out.items()))


def _decode(value: str):
    try:
        return YAML(typ="safe").load(value) if value != "" else ""
    except YAMLError:
        return value


def _key(table: dict, wanted: str) -> str:
    for key in table:
        if str(key).upper() == wanted.upper():
            return key
    return wanted.lower()


def apply(config: Mapping, env: Mapping[str, str]) -> dict:
    """A copy of `config` (a plain mapping) with every REGISTRY_* override of `env` applied in name order."""
    out = copy.deepcopy(dict(config))
    for name, value in overrides(env).items():
        path = name[len(PREFIX):].split("_")
        decoded = _decode(value)
        if [p.lower() for p in path] == ["storage"] and isinstance(decoded, str):
            decoded = {decoded: {}}          # the storage section's string form: a driver, no parameters
        table = out
        for part in path[:-1]:
            key = _key(table, part)
            if not isinstance(table.get(key), dict):
                table[key] = {}
            table = table[key]
        table[_key(table, path[-1])] = decoded
    return out


def yaml_bytes(config: Mapping) -> bytes:
    """A plain config as YAML text (what the registry runs with, for readers of config bytes: S3, Redis).
    Written as JSON, which every YAML reader reads back as it was (a flow-style dump of `addr: :5000` is not)."""
    return json.dumps(dict(config), default=str).encode("utf-8")


def read_only_fixed_by(env: Mapping[str, str]) -> list[str]:
    """The variables that decide read-only themselves (the maintenance section, or the whole storage
    section, which drops the file's maintenance): editing the config file cannot change read-only then."""
    fixed = []
    for name in overrides(env):
        path = tuple(p.lower() for p in name[len(PREFIX):].split("_"))
        if path == ("storage",) or path[:len(READ_ONLY_PATH)] == READ_ONLY_PATH[:len(path)]:
            fixed.append(name)
    return fixed
