"""The registry's config.yml: what gcops reads from it and the one edit it makes.

The edit (read-only on) is a round trip through ruamel.yaml so comments, key
order and quoting survive; the result is re-read and compared with the
original so that nothing but `storage.maintenance.readonly.enabled` can have
changed. Restoring never goes through YAML: the original bytes are put back.
"""
from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

STORAGE_PARAMETER_KEYS = ("cache", "maintenance", "delete", "redirect")


class RegistryConfigError(Exception):
    """The registry config cannot be read, parsed or safely edited."""


@dataclass(frozen=True)
class RegistryConfig:
    storage_driver: str | None       # "filesystem", "s3", ...
    storage_root: str | None         # filesystem rootdirectory ("/var/lib/registry" when unset)
    read_only: bool                  # storage.maintenance.readonly.enabled
    database: str | None             # database.enabled as text: "true", "prefer", "false" or None
    delete_enabled: bool

    @property
    def uses_metadata_database(self) -> bool:
        return self.database in ("true", "prefer")


def _load(text: str):
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise RegistryConfigError(f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise RegistryConfigError("not a YAML mapping")
    return data


def parse_registry_config(text: str) -> RegistryConfig:
    """Give what gcops needs from config.yml text. Raises RegistryConfigError."""
    data = _load(text)
    storage = data.get("storage") or {}
    if not isinstance(storage, dict):
        raise RegistryConfigError("'storage' is not a mapping")
    drivers = [k for k in storage if k not in STORAGE_PARAMETER_KEYS]
    driver = drivers[0] if len(drivers) == 1 else None
    root = None
    if driver == "filesystem":
        params = storage.get("filesystem") or {}
        root = str(params.get("rootdirectory") or "/var/lib/registry")
    maintenance = storage.get("maintenance") or {}
    readonly = (maintenance.get("readonly") or {}) if isinstance(maintenance, dict) else {}
    read_only = isinstance(readonly, dict) and readonly.get("enabled") is True
    database = data.get("database")
    db_enabled = None
    if isinstance(database, dict) and "enabled" in database:
        db_enabled = str(database["enabled"]).lower()
    delete = storage.get("delete") or {}
    return RegistryConfig(
        storage_driver=driver if drivers else None,
        storage_root=root,
        read_only=read_only,
        database=db_enabled,
        delete_enabled=isinstance(delete, dict) and delete.get("enabled") is True,
    )


def with_read_only(original: bytes) -> bytes:
    """Give config bytes with `storage.maintenance.readonly.enabled: true`.

    Block-style configs get a surgical edit (a few inserted lines, or one
    token changed); anything else goes through a ruamel.yaml round trip. Either
    way the result is re-read and must equal the original plus the flag.
    Raises RegistryConfigError when the file cannot be edited safely.
    """
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryConfigError("config is not UTF-8") from exc
    before = _load(text)
    if not isinstance(before.get("storage"), dict):
        raise RegistryConfigError("'storage' is not a mapping; cannot set read-only")
    new_text = _surgical_edit(text) or _round_trip_edit(text)
    if _load(new_text) != _set_read_only(before):
        raise RegistryConfigError("editing config.yml would change more than the read-only flag; refusing")
    return new_text.encode("utf-8")


def _block_map(node) -> bool:
    return isinstance(node, CommentedMap) and not node.fa.flow_style() and len(node) > 0


def _surgical_edit(text: str) -> str | None:
    """Insert or change only the lines needed, or None when the layout is unusual."""
    try:
        doc = YAML().load(text)
    except YAMLError:
        return None
    storage = doc.get("storage") if isinstance(doc, CommentedMap) else None
    if not _block_map(storage):
        return None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    col = storage.lc.key(next(iter(storage)))[1]
    step = col - doc.lc.key("storage")[1]
    if step <= 0:
        return None

    def block(indent: int, *keys: str) -> list[str]:
        out = [f"{' ' * (indent + i * step)}{k}:\n" for i, k in enumerate(keys)]
        out.append(f"{' ' * (indent + len(keys) * step)}enabled: true\n")
        return out

    maintenance = storage.get("maintenance")
    if "maintenance" not in storage:
        lines[doc.lc.key("storage")[0] + 1:doc.lc.key("storage")[0] + 1] = block(col, "maintenance", "readonly")
    elif _block_map(maintenance):
        mcol = maintenance.lc.key(next(iter(maintenance)))[1]
        readonly = maintenance.get("readonly")
        if "readonly" not in maintenance:
            at = storage.lc.key("maintenance")[0] + 1
            lines[at:at] = block(mcol, "readonly")
        elif _block_map(readonly) and "enabled" in readonly:
            line, vcol = readonly.lc.value("enabled")
            current = lines[line]
            match = re.match(r"[^\s#]+", current[vcol:])
            if match is None:
                return None
            lines[line] = current[:vcol] + "true" + current[vcol + match.end():]
        elif _block_map(readonly):
            rcol = readonly.lc.key(next(iter(readonly)))[1]
            at = maintenance.lc.key("readonly")[0] + 1
            lines[at:at] = [f"{' ' * rcol}enabled: true\n"]
        else:
            return None
    else:
        return None
    result = "".join(lines)
    return result if text.endswith("\n") else result[:-1]


def _round_trip_edit(text: str) -> str:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
        yaml.indent(mapping=indent or 2, sequence=(indent or 2) + (block_seq_indent or 0),
                    offset=block_seq_indent or 0)
        doc = yaml.load(text)
    except YAMLError as exc:
        raise RegistryConfigError(f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    storage = doc["storage"]
    maintenance = storage.get("maintenance")
    if maintenance is None:
        storage["maintenance"] = maintenance = {}
    if not isinstance(maintenance, dict):
        raise RegistryConfigError("'storage.maintenance' is not a mapping")
    readonly = maintenance.get("readonly")
    if readonly is None:
        maintenance["readonly"] = readonly = {}
    if not isinstance(readonly, dict):
        raise RegistryConfigError("'storage.maintenance.readonly' is not a mapping")
    readonly["enabled"] = True
    out = io.StringIO()
    yaml.dump(doc, out)
    new_text = out.getvalue()
    return new_text if text.endswith("\n") else new_text.rstrip("\n")


def _set_read_only(data: dict) -> dict:
    result = copy.deepcopy(data)
    storage = result.setdefault("storage", {})
    maintenance = storage.get("maintenance") or {}
    storage["maintenance"] = maintenance
    readonly = maintenance.get("readonly") or {}
    maintenance["readonly"] = readonly
    readonly["enabled"] = True
    return result
