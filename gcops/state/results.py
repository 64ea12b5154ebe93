"""The figures of one instance in one run, as SPEC's JSON documents carry them."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

OK, FAILED, SKIPPED, NOT_RESTORED = "ok", "failed", "skipped", "not_restored"


@dataclass
class InstanceResult:
    name: str
    hosts: list[str]
    playbook: str
    mode: str
    delete_untagged: bool
    storage_driver: str | None = None
    status: str = SKIPPED
    error: str | None = None
    storage_bytes_before: int | None = None
    storage_bytes_after: int | None = None
    reclaimed_bytes: int | None = None
    fs_used_bytes_before: int | None = None
    fs_used_bytes_after: int | None = None
    blobs_before: int | None = None
    blobs_after: int | None = None
    blobs_deleted: int | None = None
    manifests_deleted: int | None = None
    window_seconds: float | None = None
    gc_seconds: float | None = None
    duration_seconds: float | None = None
    read_only_verified: bool | None = None     # writes proven refused by a 405 (False: accepted on a restart)
    tags_deleted: list[dict] = field(default_factory=list)   # retention: {"repository", "tag", "digest"}
    warnings: list[str] = field(default_factory=list, repr=False)
    lock_held: bool = field(default=False, repr=False)
    interrupted: bool = field(default=False, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        del data["lock_held"], data["interrupted"], data["warnings"]
        for key in ("window_seconds", "gc_seconds", "duration_seconds"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    # 32 random bits: per-host timers sharing one history start in the same second
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code_for(results: list[InstanceResult], interrupted: bool = False) -> int:
    """SPEC exit codes: 3 not restored > 130 interrupted > 75 locked > 1 failed > 0."""
    if any(r.status == NOT_RESTORED for r in results):
        return 3
    if interrupted:
        return 130
    if any(r.lock_held for r in results):
        return 75
    if any(r.status in (FAILED, SKIPPED) and r.error for r in results):
        return 1
    return 0


def run_document(command: str, run_id: str, started: datetime, finished: datetime, dry_run: bool,
                 results: list[InstanceResult], exit_code: int) -> dict:
    instances = [r.to_dict() for r in results]
    return {
        "run_id": run_id, "command": command, "dry_run": dry_run,
        "started_at": iso(started), "finished_at": iso(finished), "exit_code": exit_code,
        "instances": instances,
        "totals": {
            "reclaimed_bytes": sum(r.reclaimed_bytes or 0 for r in results),
            "instances_ok": sum(1 for r in results if r.status == OK),
            "instances_failed": sum(1 for r in results if r.status != OK),
        },
    }
