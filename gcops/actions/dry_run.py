"""`gcops run --dry-run`: every step and the exact commands, per instance; changes nothing.

It connects and reads (preflight) so the steps show the real config diff and
whether the instance would be refused; nothing is written anywhere.
"""
from __future__ import annotations

import difflib


from gcops import hostside, preflight
from gcops.actions.run import RunRequest, options_for
from gcops.config import Config, Instance
from gcops.hosts import HostError, connect
from gcops.maintenance import gc_command, ssh_settings
from gcops.playbooks import render
from gcops.registry import storage
from gcops.registry.config_file import RegistryConfigError, with_read_only
from gcops.retention import RetentionRefused, RetentionStep


def describe_instance(instance: Instance, request: RunRequest, state_dir) -> dict:
    """{"name", "hosts", "refused": str|None, "steps": [str, ...]}."""
    opts = options_for(instance, request)
    cmds, vars = instance.playbook.commands, instance.vars
    first = instance.hosts[0]
    state = hostside.host_state_dir(vars["config"])
    steps: list[str] = []
    refused = None
    diff = ""
    retention = None
    root = vars.get("storage_root") or "<storage.filesystem.rootdirectory from the config>"
    try:
        host = connect(first, ssh_settings(instance))
        try:
            facts = preflight.gather(host, vars)
            root = facts.storage_root or root
            try:
                preflight.refuse_unless_safe(preflight.evaluate(facts, vars, opts.mode))
            except preflight.Refused as exc:
                refused = str(exc)
            if opts.retention and instance.retention and refused is None and not facts.empty_storage:  # hook(retention)
                retention = RetentionStep(instance.retention)
                try:
                    retention.prepare(host, facts.storage_root, facts.registry.storage_driver)
                except RetentionRefused as exc:
                    refused = str(exc)
            if facts.config_bytes is not None and facts.registry is not None and not facts.registry.read_only:
                try:
                    new = with_read_only(facts.config_bytes).decode()
                    diff = "".join(difflib.unified_diff(facts.config_bytes.decode().splitlines(True),
                                                        new.splitlines(True), vars["config"], vars["config"]))
                except RegistryConfigError as exc:
                    refused = refused or str(exc)
        finally:
            host.close()
    except HostError as exc:
        refused = f"cannot connect: {exc}"
    where = "this machine" if instance.is_local else ", ".join(instance.hosts)
    steps.append(f"connect to {where}" + ("" if instance.is_local else f" as {instance.user} (port {instance.port}, "
                                                                      f"host keys: {instance.host_key_policy})"))
    steps.append(f"preflight: read {vars['config']}, GET {vars['registry_url']}/v2/, check {vars['registry']}, "
                 f"metadata database off, storage {root} present without lockfiles/database-in-use")
    steps.append(f"measure: {storage.measure_command(root)}")
    steps.append(f"record intent: {state_dir}/journal/{instance.name}/ and {state}/ "
                 f"(lock, original config bytes, marker); arm a watchdog restoring after "
                 f"max_window {opts.max_window:g}s + {hostside.GRACE_SECONDS}s")
    for node in instance.hosts:
        if opts.mode == "stop":
            steps.append(f"[{node}] stop: {render(cmds['stop'], vars)}")
        else:
            steps.append(f"[{node}] write {vars['config']} with storage.maintenance.readonly.enabled: true"
                         + (f"\n{diff.rstrip()}" if diff else ""))
            steps.append(f"[{node}] restart: {render(cmds['restart'], vars)}; wait until /v2/ answers")
            steps.append(f"[{node}] verify: PUT {vars['registry_url']}{hostside.PROBE_PATH} answers 405, GET /v2/ answers")
    if retention is not None and retention.planned:   # hook(retention)
        listed = "\n".join(f"{d.repository}:{d.tag} ({d.digest}, {d.rule})" for d in retention.planned)
        steps.append(f"[{first}] retention: list the tags again (list_tags.sh), delete those of the "
                     f"{len(retention.planned)} below that the rules still delete and that still point at the "
                     "same digest (delete_tags.sh removes _manifests/tags/<tag> only), then unlink the "
                     f"manifests they leave untagged\n{listed}")
    steps.append(f"[{first}] gc: {gc_command(instance)}")
    for node in reversed(instance.hosts):
        if opts.mode == "stop":
            steps.append(f"[{node}] start: {render(cmds['start'], vars)}; wait until /v2/ answers")
        else:
            steps.append(f"[{node}] restore the original bytes of {vars['config']}; restart: "
                         f"{render(cmds['restart'], vars)}; verify writes accepted and reads answer")
    steps.append("unlock, disarm the watchdog, measure again, record the run")
    return {"name": instance.name, "hosts": list(instance.hosts), "refused": refused, "steps": steps}


def dry_run(config: Config, request: RunRequest) -> dict:
    return {"dry_run": True, "instances": [describe_instance(i, request, config.settings.state_dir)
                                           for i in config.select(request.targets)]}
