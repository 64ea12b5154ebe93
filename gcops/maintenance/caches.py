"""Steps after the collector, inside the window: caches that would otherwise describe deleted blobs.

`RedisDescriptorPurge` runs on the GC node after GC and before any node is
left (writes still refused), so no push can meet a descriptor of a deleted
blob. A purge that fails raises WindowFailed: the run fails, never silently ok.
"""
from __future__ import annotations

from gcops.maintenance import guards
from gcops.transport.hosts import HostError
from gcops.maintenance.collect import Collected
from gcops.maintenance.node import Node, WindowFailed
from gcops.registry.redis_cache import PurgeFailed, RedisSettings


class RedisDescriptorPurge:
    """Remove the Redis descriptors of what GC deleted and of every blob gone from the storage."""

    name = "purge_descriptors"

    def __init__(self, settings: RedisSettings, log):
        self.settings, self.log = settings, log
        self.outcome = None

    def apply_after(self, node: Node, collected: Collected) -> None:
        if not collected.started:
            return
        try:
            self.outcome = guards.purge_redis(node.host, self.settings, node.facts.storage_root,
                                                     collected.deleted_digests)
        except (PurgeFailed, HostError) as exc:
            raise WindowFailed(f"{node.address}: stale blob descriptors may remain in the registry's Redis cache "
                               f"({exc}); a push of a deleted layer could be skipped and break its image: fix "
                               "it and run gcops again (each run purges every descriptor of a blob gone from "
                               "the storage)") from exc
