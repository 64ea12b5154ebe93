"""`gcops plan`: the registry's own GC in dry-run against the live storage, plus the bytes it would free.

No config change, no restart, no lock: writes keep working. Upstream prints
only counts, so the eligible blob digests are spooled to a temporary file as
they stream past and their on-disk size is summed on the host afterwards.
"""
from __future__ import annotations

import tempfile
from typing import Sequence

import structlog

from gcops.containers import resolve as containers
from gcops.maintenance import preflight
from gcops.maintenance.concurrent_sweep import describe as describe_concurrent
from gcops.actions.common import cancel_on_signals, map_parallel
from gcops.config import Config, Instance
from gcops.errors import Cancelled, GcopsError, HostError, Refused
from gcops.transport.hosts import connect
from gcops.maintenance import gc_command, ssh_settings
from gcops.storage import s3
from gcops.storage import filesystem
from gcops.registry.gc_output import GCOutputParser
from gcops.registry.untagged import UntaggedScan
from gcops.retention import RetentionRefused, RetentionStep


def plan_instance(instance: Instance, delete_untagged: bool, cancel, retention: bool = True) -> dict:
    log = structlog.get_logger().bind(instance=instance.name, host=instance.hosts[0])
    out = {"name": instance.name, "mode": instance.mode, "eligible_blobs": None, "eligible_manifests": None,
           "reclaimable_bytes": None, "storage_bytes": None, "retention": {"delete": []}, "error": None}
    try:
        host = connect(instance.hosts[0], ssh_settings(instance))
    except GcopsError as exc:
        out["error"] = str(exc)
        log.warning("plan_failed", error=out["error"])
        return out
    try:
        instance = containers.resolve(instance, host, instance.mode)
        facts = preflight.gather(host, instance.vars, measure=True, s3_overrides=instance.s3,
                                 registry_env=containers.registry_env_of(instance))
        checks = [c for c in preflight.evaluate(facts, instance.vars) if c.name != "lock"]
        preflight.refuse_unless_safe(checks)
        root = facts.storage_root
        if facts.bucket is not None and delete_untagged:
            raise Refused("--delete-untagged is not supported on S3 storage yet; plan without it")
        out["storage_bytes"] = facts.snapshot.storage_bytes
        if instance.mode == "concurrent":   # what a run would do, step by step
            out["concurrent"] = describe_concurrent(root, gc_command(instance, dry_run=True))
        if facts.empty_storage:
            out.update(eligible_blobs=0, eligible_manifests=0, reclaimable_bytes=0)
            return out
        step = None
        if retention and instance.retention:
            step = RetentionStep(instance.retention, log)
            try:
                out["retention"]["delete"] = [d.to_dict() for d in step.prepare(host, root,
                                                                                facts.registry.storage_driver)]
            except RetentionRefused as exc:
                out["retention"]["delete"] = [d.to_dict() for d in step.planned]
                raise Refused(str(exc)) from exc
        with tempfile.TemporaryFile() as spool:
            parser = GCOutputParser(on_eligible_blob=lambda d: spool.write(d.encode("ascii") + b"\n"))
            code, tail = host.stream(gc_command(instance, dry_run=True), parser.feed, cancel=cancel)
            summary = parser.finish()
            if code != 0:
                raise HostError(f"GC dry-run exited {code}: {' | '.join(tail[-3:])}")
            extra, manifests, links = set(), 0, 0
            if delete_untagged or (step and step.planned):
                # the registry's own -m would count children of tagged indexes; gcops' safe set instead
                scan = UntaggedScan(host, root)
                untagged = scan.find()
                doomed = untagged if delete_untagged else {}
                if step and step.planned:
                    # what retention's deleted tags leave untagged: GC frees it in the same run
                    for repo, digests in step.left_untagged(scan).items():
                        doomed[repo] = doomed.get(repo, set()) | digests
                    links = step.removal_bytes(host, root, doomed)
                else:
                    links = scan.links_bytes(doomed)
                manifests = sum(len(d) for d in doomed.values())
                spool.seek(0)
                extra = scan.freed(doomed) - {line.strip().decode("ascii").removeprefix("sha256:")
                                               for line in spool if line.strip()}
            spool.seek(0)
            digests = [line.strip().decode("ascii") for line in spool if line.strip()]
            digests.extend(f"sha256:{d}" for d in sorted(extra))
            if facts.bucket is not None:   # blob sizes from the bucket
                sized = s3.blob_sizes(facts.bucket.settings, digests)[0]
            else:
                sized = filesystem.parse_bytes(host.run(filesystem.blobs_size_command(root),
                                                     input=filesystem.blob_paths_input(digests), timeout=None).text,
                                            "blob_bytes.sh") if digests else 0
        out["eligible_blobs"] = (summary.blobs_eligible or 0) + len(extra)
        out["eligible_manifests"] = (summary.manifests_eligible or 0) + manifests
        out["reclaimable_bytes"] = sized + links
        log.info("planned", tags_deleted=len(out["retention"]["delete"]),
                 **{k: v for k, v in out.items() if k not in ("name", "error", "retention")})
    except Refused as exc:
        out["error"] = f"refused: {exc}"
    except Cancelled:
        out["error"] = "interrupted"
    except GcopsError as exc:   # this instance failed; the others' results stand
        out["error"] = str(exc)
    finally:
        host.close()
    if out["error"]:
        log.warning("plan_failed", error=out["error"])
    return out


def plan(config: Config, targets: Sequence[str], delete_untagged: bool | None = None,
         parallel: int | None = None, retention: bool = True) -> dict:
    instances = config.select(targets)
    with cancel_on_signals() as cancel:
        results = map_parallel(
            lambda inst: plan_instance(inst, inst.delete_untagged if delete_untagged is None else delete_untagged,
                                       cancel, retention),
            instances, parallel or config.settings.parallel)
    return {"instances": results}
