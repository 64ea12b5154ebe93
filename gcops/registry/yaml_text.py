"""YAML as the registry reads it: go-yaml's leniency, and trees compared without shared references.

go-yaml (the registry's parser) accepts a tab before an end-of-line comment;
ruamel.yaml refuses it. `parse_text` gives text ruamel reads the way the
registry does, with the same length, lines and columns as the original, so
positions found in it apply to the original bytes. `plain` materialises a
loaded tree: anchors and aliases become independent copies, so a comparison
cannot be fooled by one node shared at two places.
"""
from __future__ import annotations

import re

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

# whitespace containing a tab, right before a comment: after a value, or alone on a line
_TAB_BEFORE_COMMENT = re.compile(r"(?:(?<=\S)|^)([ \t]*\t[ \t]*)(?=#)", re.MULTILINE)
MAX_DEPTH = 64


def parse_text(text: str) -> str:
    """`text`, or, when ruamel refuses it, `text` with every tab before a `#` comment turned into a
    space (same length and positions). Text that parses as it is stays untouched, so a tab inside
    a quoted value is never changed."""
    try:
        YAML(typ="safe").load(text)
        return text
    except YAMLError:
        return _TAB_BEFORE_COMMENT.sub(lambda m: m.group(1).replace("\t", " "), text)


def plain(node, depth: int = 0):
    """A copy of a loaded YAML tree with no object shared between two places (deepcopy would
    keep the aliasing). Raises ValueError past MAX_DEPTH (a recursive alias)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels (a recursive alias?)")
    if isinstance(node, dict):
        return {k: plain(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v, depth + 1) for v in node]
    return node


def reference_counts(doc) -> dict[int, int]:
    """How many places of a round-trip-loaded document hold each mapping/sequence object
    (an anchored node that is aliased elsewhere counts more than 1). Merged maps count once
    for each `<<` that names them; a map's merged-in keys are not walked twice."""
    counts: dict[int, int] = {}

    def visit(node, depth: int) -> None:
        if not isinstance(node, (dict, list)) or depth > MAX_DEPTH:
            return
        counts[id(node)] = counts.get(id(node), 0) + 1
        if counts[id(node)] > 1:
            return                      # its children were counted at the first visit
        if isinstance(node, list):
            for item in node:
                visit(item, depth + 1)
            return
        own = getattr(node, "_ok", None)
        for key in (node if own is None else own):
            visit(node[key], depth + 1)
        for source in getattr(node, "merge", None) or []:
            visit(source[1] if isinstance(source, tuple) else source, depth + 1)

    visit(doc, 0)
    return counts


def merged(node) -> bool:
    """Whether a round-trip-loaded mapping takes keys from a `<<` merge."""
    return bool(getattr(node, "merge", None))


def own_keys(node) -> set:
    """The keys written in the mapping itself (not merged in)."""
    own = getattr(node, "_ok", None)
    return set(node) if own is None else set(own)
