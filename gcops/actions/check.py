"""`gcops check`: preflight every targeted instance; changes nothing."""
from __future__ import annotations

from typing import Sequence

import structlog

from gcops.maintenance import preflight
from gcops.storage import identity
from gcops.actions.common import map_parallel
from gcops.config import Config, Instance
from gcops.errors import GcopsError
from gcops.transport.hosts import connect
from gcops.maintenance import ssh_settings


def check_instance(instance: Instance) -> dict:
    """{"name", "ok", "checks": [...]}; a check per fact, per node for HA instances."""
    log = structlog.get_logger().bind(instance=instance.name, host=",".join(instance.hosts))
    checks: list[preflight.Check] = []
    for address in instance.hosts:
        prefix = f"{address}: " if len(instance.hosts) > 1 else ""
        try:
            host = connect(address, ssh_settings(instance))
        except GcopsError as exc:
            checks.append(preflight.Check(f"{prefix}reachable", False, str(exc)))
            continue
        try:
            facts = preflight.gather(host, instance.vars, s3_overrides=instance.s3)
            for check in preflight.evaluate(facts, instance.vars, instance.mode):
                checks.append(preflight.Check(prefix + check.name, check.ok, check.detail))
        except GcopsError as exc:
            checks.append(preflight.Check(f"{prefix}reachable", False, str(exc)))
        finally:
            host.close()
    ok = all(c.ok for c in checks)
    log.info("checked", ok=ok, failed=[c.name for c in checks if not c.ok])
    return {"name": instance.name, "ok": ok, "checks": [c.to_dict() for c in checks]}


def check(config: Config, targets: Sequence[str], parallel: int | None = None) -> dict:
    instances = config.select(targets)
    results = map_parallel(check_instance, instances, parallel or config.settings.parallel)
    # a storage another targeted instance shares (ids only read, never created)
    sightings = map_parallel(lambda i: identity.sight(i, create=False), instances,
                             parallel or config.settings.parallel)
    refusals = identity.screen(config, sightings, structlog.get_logger()).refusals
    for result, seen in zip(results, sightings):
        if seen.storage_id or seen.error:
            why = refusals.get(result["name"])
            result["checks"].append(preflight.Check("shared_storage", why is None,
                                                    why or f"{seen.storage_id}: no other instance").to_dict())
            result["ok"] = result["ok"] and why is None
    return {"instances": results}
