"""`gcops check`: preflight every targeted instance; changes nothing."""
from __future__ import annotations

from typing import Sequence

import structlog

from gcops.containers import resolve as containers
from gcops.maintenance import preflight
from gcops.storage import identity
from gcops.actions.common import map_parallel
from gcops.config import Config, Instance
from gcops.errors import GcopsError, Refused
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
            resolved, container_checks = _container_checks(instance, host)
            checks.extend(container_checks)
            if resolved is None:
                continue
            facts = preflight.gather(host, resolved.vars, s3_overrides=resolved.s3,
                                     registry_env=containers.registry_env_of(resolved))
            for check in preflight.evaluate(facts, resolved.vars):
                checks.append(preflight.Check(prefix + check.name, check.ok, check.detail))
        except GcopsError as exc:
            checks.append(preflight.Check(f"{prefix}reachable", False, str(exc)))
        finally:
            host.close()
    ok = all(c.ok for c in checks)
    log.info("checked", ok=ok, failed=[c.name for c in checks if not c.ok])
    return {"name": instance.name, "ok": ok, "checks": [c.to_dict() for c in checks]}


def _container_checks(instance: Instance, host) -> tuple[Instance | None, list[preflight.Check]]:
    """The instance as its engine resolves it (itself when it names no container), and the engine and
    container checks; None when the container cannot be used."""
    if instance.container is None:
        return instance, []
    try:
        resolved = containers.resolve(instance, host, instance.mode)
    except containers.EngineUnreachable as exc:
        return None, [preflight.Check("engine", False, str(exc))]
    except Refused as exc:
        return None, [preflight.Check("engine", True, instance.container.engine),
                      preflight.Check("container", False, str(exc))]
    r = resolved.resolved
    where = "copied out of the container's layer" if r.config_copied else "bind mount"
    return resolved, [preflight.Check("engine", True, instance.container.engine),
                      preflight.Check("container", True, f"{r.facts.name} (id {r.facts.id[:12]}, image {r.facts.image}, registry {r.registry_inside}, "
                                                         f"config {r.config_inside} on the host at "
                                                         f"{resolved.vars['config']}, {where})")]


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
