"""Intent written under the local state_dir before a host is changed.

The host keeps its own record (gcops/hostside); this local one lets `gcops
recover` put the original config bytes back even if the host-side directory
was lost. One JSON file per (instance, node, run), written atomically, removed
by that run once the node is verified restored (or when its enter changed
nothing): a run refused by another's lock never touches the other's record.
"""
from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Intent:
    run_id: str
    instance: str
    node: str
    config_path: str
    registry_url: str
    mode: str
    restart: str
    start: str
    already_read_only: bool
    original_b64: str
    original_sha256: str
    ca_file: str = ""

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def journal_dir(state_dir: Path) -> Path:
    return state_dir / "journal"


def intent_path(state_dir: Path, instance: str, node: str, run_id: str) -> Path:
    return journal_dir(state_dir) / _safe(instance) / f"{_safe(node)}--{_safe(run_id)}.json"


def write_intent(state_dir: Path, intent: Intent) -> Path:
    """Write (fsync, rename) the intent; raises OSError when state_dir is unusable."""
    path = intent_path(state_dir, intent.instance, intent.node, intent.run_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(asdict(intent), fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def read_intents(state_dir: Path, instance: str) -> list[Intent]:
    folder = journal_dir(state_dir) / _safe(instance)
    if not folder.is_dir():
        return []
    intents = []
    for path in sorted(folder.glob("*.json")):
        try:
            intents.append(Intent(**json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, TypeError):
            continue
    return intents


def remove_intent(state_dir: Path, instance: str, node: str, run_id: str) -> None:
    """Remove this run's intent for the node (never another run's)."""
    try:
        intent_path(state_dir, instance, node, run_id).unlink()
    except FileNotFoundError:
        pass
