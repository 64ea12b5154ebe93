"""This machine's own copy of the storage owners: the cross-run shared-storage check's fallback.

With a shared history (PostgreSQL) that is down, the check cannot read who collected a storage
last. It then falls back to what this machine knows: every owner it read from the history or
recorded itself (``<state_dir>/storage-owners.json``, refreshed at each screen) and the owners in
the runs still waiting in its outbox. The newest record of a storage wins, as in the database.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from gcops.state.history.outbox import Outbox
from gcops.textfiles import write_atomically

COPY_NAME = "storage-owners.json"


def _read(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: unreadable copy of the storage owners: {exc}") from None
    return data if isinstance(data, dict) else {}


def _newest(into: dict[str, dict], owners: Mapping[str, dict]) -> dict[str, dict]:
    for storage_id, owner in owners.items():
        if storage_id not in into or str(owner.get("seen_at", "")) >= str(into[storage_id].get("seen_at", "")):
            into[storage_id] = dict(owner)
    return into


def remember(state_dir: Path, owners: Mapping[str, dict]) -> None:
    """Merge ``owners`` ({storage_id: {"instance", "run_id", "seen_at"}}) into the copy. Raises OSError."""
    if not owners:
        return
    path = Path(state_dir) / COPY_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(COPY_NAME + ".lock"), "a") as lock:   # gcops runs at once on one machine:
        fcntl.flock(lock, fcntl.LOCK_EX)                         # each merge sees the one before it
        write_atomically(path, json.dumps(_newest(_read(path), owners), sort_keys=True), mode=0o600)


def known(state_dir: Path, storage_ids: Iterable[str]) -> dict[str, dict]:
    """The owners this machine knows for ``storage_ids`` (its copy and its outbox). Raises OSError."""
    ids = set(storage_ids)
    owners = _read(Path(state_dir) / COPY_NAME)
    for path in Outbox(state_dir).waiting():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue          # sent or set aside meanwhile
        _newest(owners, {o["storage_id"]: {k: o[k] for k in ("instance", "run_id", "seen_at")}
                         for o in record.get("storage_owners", ()) if isinstance(o, dict) and "storage_id" in o})
    return {k: v for k, v in owners.items() if k in ids}
