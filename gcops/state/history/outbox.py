"""Records not yet in the history database: a spool in ``<state_dir>/history-outbox/``.

A run is written here first (one JSON file per run: the run document and the
storages it worked), then sent; a file leaves the spool only once the database
has committed it. So a database that is down, unreachable or refusing loses
nothing: the next command that writes history sends what is waiting, oldest
first. Sending twice stores a run once (run_id is the key), so a gcops killed
between commit and unlink does no harm. Concurrent senders on one machine take
turns under a lock file.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gcops.state.history.records import StorageOwner
from gcops.state.history.store import HistoryError, RecordRejected, SqlHistory
from gcops.textfiles import write_atomically

OUTBOX_DIR = "history-outbox"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Sending:
    """What one ``Outbox.send`` did: runs sent, runs still waiting, why it stopped (None: all sent)."""

    sent: int
    waiting: int
    error: str | None = None


class Outbox:
    """The spool of one state directory."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / OUTBOX_DIR

    def keep(self, run: dict, owners: Iterable[StorageOwner] = ()) -> Path:
        """Write ``run`` (and its storage owners) to the spool; gives the file. Raises OSError, ValueError."""
        run_id = str(run.get("run_id") or "")
        if not _RUN_ID.fullmatch(run_id):
            raise ValueError(f"run document has no usable run_id: {run_id!r}")
        path = self.dir / f"{run_id}.json"
        record = {"run": run, "storage_owners": [vars(o) for o in owners]}
        write_atomically(path, json.dumps(record), mode=0o600)
        return path

    def waiting(self) -> list[Path]:
        """The spooled runs, oldest first (run ids begin with their start time)."""
        return sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []

    @contextmanager
    def _turn(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def send(self, store: SqlHistory) -> Sending:
        """Record every spooled run in ``store``, oldest first, removing each once committed; stops
        at the first failure (the rest waits for the next time). Never raises for the database."""
        if not self.waiting():
            return Sending(0, 0)
        sent, error = 0, None
        with self._turn():
            for path in self.waiting():      # again under the lock: another gcops may have sent some
                try:
                    record = json.loads(path.read_text(encoding="utf-8"))
                    owners = [StorageOwner(**o) for o in record.get("storage_owners", ())]
                    store.record_run(record["run"], owners)
                except FileNotFoundError:
                    continue
                except RecordRejected as exc:
                    aside = path.with_suffix(".rejected")    # sending it again cannot succeed: never block
                    path.rename(aside)                       # the runs after it; kept for a person
                    error = f"{aside}: the database refused this kept run ({exc}); set aside"
                    continue
                except HistoryError as exc:
                    error = str(exc)
                    break
                except (OSError, ValueError, TypeError, KeyError) as exc:
                    # a damaged spool file must not block the others forever: set it aside, say so
                    aside = path.with_suffix(".unreadable")
                    path.rename(aside)
                    error = f"{aside}: cannot send this kept run ({type(exc).__name__}: {exc}); set aside"
                    continue
                path.unlink(missing_ok=True)
                sent += 1
        return Sending(sent, len(self.waiting()), error)
