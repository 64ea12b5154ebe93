"""`gcops run --dry-run`: the very commands a run would send, per instance and node, in order; changes nothing.

It connects and reads (preflight, the same as a run's) and then builds each
step's command with the same functions the run uses (`node.enter_command_for`,
the collector's `command`, `hostside.leave_command`),
so what is printed is what would be sent. JSON carries each command whole; the
text output shows each host script by name with its arguments (long ones
summarised by size and checksum).
"""
from __future__ import annotations

import difflib
import hashlib
import shlex

import structlog

from gcops import hostside
from gcops.maintenance import preflight
from gcops.storage import identity
from gcops.actions.run import RunRequest, options_for
from gcops.config import Config, Instance
from gcops.containers import resolve as containers
from gcops.errors import GcopsError, Refused
from gcops.transport.hosts import connect
from gcops.maintenance import ssh_settings
from gcops.maintenance.collect import RegistryGC
from gcops.maintenance.concurrent import ConcurrentGC
from gcops.maintenance.node import Node, enter_command_for, plan_for
from gcops.registry import untagged
from gcops.storage import s3
from gcops.storage import filesystem
from gcops.retention import RetentionStep

LONG_ARGUMENT = 160


def display(command: str) -> str:
    """A host command for people: `sh <script>.sh ARGS` for gcops' scripts, long arguments summarised."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    if len(words) >= 4 and words[:2] == ["/bin/sh", "-c"] and words[3].startswith("gcops-"):
        words = ["sh", f"gcops/hostside/sh/{words[3][len('gcops-'):]}.sh", *words[4:]]
    shown = []
    for word in words:
        key, _, inner = word.partition("=")
        if key == "gc" and inner.startswith("/bin/sh -c ") and display(inner) != inner:
            word = f"gc=[{display(inner)}]"     # a gcops collector script inside gc.sh, by name too
        elif len(word) > LONG_ARGUMENT:
            key = word.split("=", 1)[0] + "=" if "=" in word[:40] else ""
            word = f"{key}<{len(word) - len(key)} bytes, sha256 {hashlib.sha256(word.encode()).hexdigest()[:12]}>"
        shown.append(shlex.quote(word))
    return " ".join(shown)


def _step(steps: list[dict], node: str, name: str, command: str, stdin: str | None = None) -> None:
    steps.append({"node": node, "step": name, "command": command, "stdin": stdin})


def describe_instance(instance: Instance, request: RunRequest, run_id: str) -> dict:
    """{"name", "hosts", "refused": str|None, "diff": str, "steps": [{"node", "step", "command", "stdin"}]}."""
    opts = options_for(instance, request)
    vars = instance.vars
    steps: list[dict] = []
    refused, diff = None, ""
    explain: list[str] = []
    nodes = [Node(address) for address in instance.hosts]
    try:
        for node in nodes:
            node.host = connect(node.address, ssh_settings(instance))
            if instance.container is not None:   # the engine says where the config and storage are
                _step(steps, node.address, "inspect_container", containers.find_command(instance.container))
                instance = containers.resolve(instance, node.host, opts.mode)
                vars = instance.vars
            _step(steps, node.address, "preflight", hostside.preflight_command(
                vars["config"], vars["registry_url"], vars["registry"], vars.get("registry_ca_file", "")))
            node.facts = preflight.gather(node.host, vars, s3_overrides=instance.s3,
                                          registry_env=containers.registry_env_of(instance))
            try:
                preflight.refuse_unless_safe(preflight.evaluate(node.facts, vars))
            except Refused as exc:
                refused = refused or f"{node.address}: {exc}"
        if refused is None:
            first = nodes[0]
            root = first.facts.storage_root
            on_s3 = first.facts.bucket is not None   # the bucket is listed from this machine
            if on_s3 and opts.delete_untagged:
                raise Refused(s3.DELETE_UNTAGGED_REFUSED)
            _step(steps, "this machine" if on_s3 else first.address, "measure",
                  f"list {root} (ListObjectsV2, in parallel)" if on_s3
                  else hostside.storage_check_command(root, filesystem.measure_command(root)))
            if opts.delete_untagged:
                _step(steps, first.address, "find_untagged", untagged.listing_command(root))
            retention = None
            if opts.retention and instance.retention and not first.facts.empty_storage:
                retention = RetentionStep(instance.retention)
                _step(steps, first.address, "plan_retention", retention.listing_command(root))
                retention.prepare(first.host, root, first.facts.registry.storage_driver)   # reads; may refuse
            # the mark runs before the window; the delta and sweep replace the GC in it
            collector = (ConcurrentGC(instance, None, run_id=run_id) if opts.mode == "concurrent"
                         else RegistryGC(instance, None))
            if opts.mode == "concurrent":
                explain = collector.describe(first)
                _step(steps, first.address, "mark", collector.mark_command(first))
            for node in nodes[1:] + nodes[:1]:
                node.plan = plan_for(instance, node, opts.mode, run_id, opts.max_window)
                command, new = enter_command_for(node)
                if new is not None and not diff:
                    diff = "".join(difflib.unified_diff(
                        node.facts.config_bytes.decode("utf-8", "replace").splitlines(True),
                        new.decode("utf-8", "replace").splitlines(True), vars["config"], vars["config"]))
                    diff = s3.redact(diff)   # the context lines may show storage.s3.secretkey
                _step(steps, node.address, "enter", command,
                      f"the read-only config ({len(new)} bytes)" if new is not None else None)
            if retention is not None and retention.planned:   # what RetentionStep.apply sends
                affected = retention.affected()
                _step(steps, first.address, "retention", retention.listing_command(root, only_named=True),
                      f"the {len(affected)} repositories with planned deletions, to evaluate the rules again")
                _step(steps, first.address, "retention",
                      hostside.collect_command(first.plan, retention.delete_command(root), step=True),
                      "repository<TAB>tag<TAB>digest of the planned tags still due and still pointing there: "
                      + ", ".join(f"{d.repository}:{d.tag} ({d.digest}, {d.rule})" for d in retention.planned))
                _step(steps, first.address, "retention", untagged.listing_command(root, repos=affected))
                _step(steps, first.address, "retention",
                      hostside.collect_command(first.plan, retention.unlink_command(root), step=True),
                      "repository<TAB>digest of the manifests the deleted tags leave untagged")
            if opts.delete_untagged:
                _step(steps, first.address, "delete_untagged", untagged.listing_command(root, tags_only=True),
                      "the tags of now, to re-check the candidates")
                _step(steps, first.address, "delete_untagged",
                      hostside.collect_command(first.plan, RetentionStep.unlink_command(root), step=True),
                      "repository<TAB>digest lines of the re-checked candidates")
            _step(steps, first.address, "gc" if opts.mode != "concurrent" else "delta_and_sweep",
                  collector.command(first))
            for node in nodes[:1] + nodes[1:][::-1]:
                _step(steps, node.address, "restore", hostside.leave_command(node.plan))
            _step(steps, "this machine" if on_s3 else first.address, "measure",
                  f"list {root} again" if on_s3 else filesystem.measure_command(root))
            if opts.mode == "concurrent":
                _step(steps, first.address, "cleanup", collector.cleanup_command(first))
    except GcopsError as exc:   # this instance cannot run; the others are still described
        refused = refused or str(exc)
    finally:
        for node in nodes:
            if node.host is not None:
                node.host.close()
    return {"name": instance.name, "hosts": list(instance.hosts), "mode": opts.mode,
            "delete_untagged": opts.delete_untagged, "refused": refused, "diff": diff, "steps": steps,
            "explain": explain}


def dry_run(config: Config, request: RunRequest) -> dict:
    from gcops.state.results import new_run_id

    run_id = new_run_id()
    instances = config.select(request.targets)
    # the shared-storage refusal a real run would make (ids only read, never created)
    shared = identity.screen(config, [identity.sight(i, create=False) for i in instances],
                                   structlog.get_logger()).refusals
    described = [describe_instance(i, request, run_id) for i in instances]
    for d in described:
        if d["name"] in shared and not d["refused"]:
            d["refused"] = shared[d["name"]]
    return {"dry_run": True, "run_id": run_id, "instances": described}
