"""The registry's config.yml: what gcops reads from it and the one edit it makes.

Text is read the way the registry (go-yaml) reads it (a tab before a comment is
fine). The edit (read-only on) touches as few bytes as it can, so comments,
key order and quoting survive; the result is re-read and compared with the
original, every alias materialised, so that nothing but
`storage.maintenance.readonly.enabled` can have changed, even where that path
shares an anchored node with another key. Restoring never goes through YAML:
the original bytes are put back.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from gcops.errors import ParseError
from gcops.registry.yaml_text import merged, own_keys, parse_text, plain, reference_counts

STORAGE_PARAMETER_KEYS = ("cache", "maintenance", "delete", "redirect")


class RegistryConfigError(ParseError):
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
        data = YAML(typ="safe").load(parse_text(text))
    except YAMLError as exc:
        raise RegistryConfigError(f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise RegistryConfigError("not a YAML mapping")
    return data


def parse_registry_config(text: str) -> RegistryConfig:
    """Give what gcops needs from config.yml text. Raises RegistryConfigError."""
    return registry_config_from(_load(text))


def load_plain(text: str) -> dict:
    """config.yml text as plain dicts and lists (every alias materialised). Raises RegistryConfigError."""
    try:
        return plain(_load(text))
    except ValueError as exc:
        raise RegistryConfigError(str(exc)) from exc


def registry_config_from(data: dict) -> RegistryConfig:
    """Give what gcops needs from a parsed config (a file's, or one with the environment's overrides applied).
    Raises RegistryConfigError."""
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
    """Give config bytes with `storage.maintenance.readonly.enabled: true` and nothing else changed.

    Block-style configs get a surgical edit (a few inserted lines, one token
    changed, or an alias at the flag's path replaced by `{<<: *anchor, ...}` so
    the anchored original, shared with e.g. `uploadpurging`, stays as it was);
    anything else goes through a ruamel.yaml round trip that un-shares the
    path first. Either way the result is re-read and, with every alias
    materialised, must equal the original plus the flag at every path.
    Raises RegistryConfigError when the file cannot be edited safely.
    """
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryConfigError("config is not UTF-8") from exc
    before = _load(text)
    if not isinstance(before.get("storage"), dict):
        raise RegistryConfigError("'storage' is not a mapping; cannot set read-only")
    try:
        expected = _set_read_only(plain(before))
    except ValueError as exc:
        raise RegistryConfigError(str(exc)) from exc
    for edit in (_surgical_edit, _round_trip_edit):
        new_text = edit(text)
        if new_text is not None and _same_but_flag(new_text, expected):
            return new_text.encode("utf-8")
    raise RegistryConfigError("editing config.yml would change more than the read-only flag; refusing")


def _same_but_flag(new_text: str, expected: dict) -> bool:
    try:
        return plain(_load(new_text)) == expected
    except (RegistryConfigError, ValueError):
        return False


def _block_map(node) -> bool:
    return isinstance(node, CommentedMap) and not node.fa.flow_style() and len(node) > 0


def _alias_at(lines: list[str], parent, key: str) -> str | None:
    """`*name` when `key:` in `parent` is written as an alias on its own line, else None."""
    line, col = parent.lc.key(key)
    match = re.match(re.escape(key) + r"[ \t]*:[ \t]+(\*[^\s,\[\]{}#]+)[ \t]*(?:#.*)?$",
                     lines[line][col:].rstrip("\r\n"))
    return match.group(1) if match else None


def _child_indent(lines: list[str], line: int) -> int | None:
    """Indentation of the first content line after `line` (where a block mapping's keys sit)."""
    for text in lines[line + 1:]:
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            return len(text) - len(text.lstrip(" "))
    return None


def _surgical_edit(text: str) -> str | None:
    """Insert or change only the lines needed, or None when the layout is unusual."""
    try:
        doc = YAML().load(parse_text(text))
    except YAMLError:
        return None
    storage = doc.get("storage") if isinstance(doc, CommentedMap) else None
    if not _block_map(storage) or merged(storage) or "storage" not in own_keys(doc):
        return None
    counts = reference_counts(doc)
    if counts.get(id(storage), 0) > 1:
        return None
    nl = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += nl
    col = storage.lc.key(next(k for k in storage if k in own_keys(storage)))[1]
    step = col - doc.lc.key("storage")[1]
    if step <= 0:
        return None

    def block(indent: int, *keys: str) -> list[str]:
        out = [f"{' ' * (indent + i * step)}{k}:{nl}" for i, k in enumerate(keys)]
        out.append(f"{' ' * (indent + len(keys) * step)}enabled: true{nl}")
        return out

    def replace_alias(parent, key: str, alias: str, rest: str) -> None:
        line, kcol = parent.lc.key(key)
        at = lines[line].index(alias, kcol + len(key))
        lines[line] = lines[line][:at] + "{<<: " + alias + ", " + rest + "}" + lines[line][at + len(alias):]

    maintenance = storage.get("maintenance")
    if "maintenance" in storage and "maintenance" not in own_keys(storage):
        return None             # merged in from an anchor: the round trip un-shares it
    if "maintenance" not in storage:
        at = doc.lc.key("storage")[0] + 1
        lines[at:at] = block(col, "maintenance", "readonly")
    elif (alias := _alias_at(lines, storage, "maintenance")) is not None:
        replace_alias(storage, "maintenance", alias, "readonly: {enabled: true}")
    elif _block_map(maintenance) and counts.get(id(maintenance), 0) == 1:
        key_line = storage.lc.key("maintenance")[0]
        mcol = _child_indent(lines, key_line)
        readonly = maintenance.get("readonly")
        if mcol is None or mcol <= col:
            return None
        if "readonly" not in own_keys(maintenance):
            # missing, or merged in (an own key wins over `<<`; the check refuses it if the
            # merged block held more than the flag)
            lines[key_line + 1:key_line + 1] = block(mcol, "readonly")
        elif (alias := _alias_at(lines, maintenance, "readonly")) is not None:
            replace_alias(maintenance, "readonly", alias, "enabled: true")
        elif not _block_map(readonly) or counts.get(id(readonly), 0) != 1:
            return None         # flow style, or an anchored original aliased elsewhere: round trip
        elif "enabled" in own_keys(readonly):
            line, vcol = readonly.lc.value("enabled")
            current = lines[line]
            match = re.match(r"[^\s#]+", current[vcol:])
            if match is None:
                return None
            lines[line] = current[:vcol] + "true" + current[vcol + match.end():]
        else:                   # no flag, or one merged in (`<<: *x`): an own key wins over the merge
            rline = maintenance.lc.key("readonly")[0]
            rcol = _child_indent(lines, rline)
            if rcol is None or rcol <= mcol:
                return None
            lines[rline + 1:rline + 1] = [f"{' ' * rcol}enabled: true{nl}"]
    else:
        return None
    result = "".join(lines)
    return result if text.endswith("\n") else result[:-len(nl)]


def _own_map(doc, parent, key: str) -> CommentedMap:
    """parent[key] as a mapping no other place of `doc` shares (created when missing; an
    aliased, merged or merged-in one replaced by a fresh copy of its resolved items)."""
    node = parent.get(key)
    if node is None:
        node = CommentedMap()
    elif not isinstance(node, dict):
        raise RegistryConfigError(f"'{key}' is not a mapping")
    elif merged(node) or key not in own_keys(parent) or reference_counts(doc).get(id(node), 0) > 1:
        fresh = CommentedMap()
        for k, v in node.items():
            fresh[k] = v
        node = fresh
    else:
        return node
    parent[key] = node
    return node


def _round_trip_edit(text: str) -> str:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(parse_text(text))
        yaml.indent(mapping=indent or 2, sequence=(indent or 2) + (block_seq_indent or 0),
                    offset=block_seq_indent or 0)
        doc = yaml.load(parse_text(text))
    except YAMLError as exc:
        raise RegistryConfigError(f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    storage = _own_map(doc, doc, "storage")
    readonly = _own_map(doc, _own_map(doc, storage, "maintenance"), "readonly")
    readonly["enabled"] = True
    out = io.StringIO()
    yaml.dump(doc, out)
    new_text = out.getvalue()
    return new_text if text.endswith("\n") else new_text.rstrip("\n")


def _set_read_only(data: dict) -> dict:
    """`data` (a plain tree, changed in place) with the flag set."""
    storage = data.setdefault("storage", {})
    maintenance = storage.get("maintenance") or {}
    storage["maintenance"] = maintenance
    if not isinstance(maintenance, dict):
        raise RegistryConfigError("'storage.maintenance' is not a mapping")
    readonly = maintenance.get("readonly") or {}
    if not isinstance(readonly, dict):
        raise RegistryConfigError("'storage.maintenance.readonly' is not a mapping")
    maintenance["readonly"] = readonly
    readonly["enabled"] = True
    return data
