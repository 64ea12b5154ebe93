"""`gcops recover`: put back what an interrupted run left changed.

Per node, from the host's own record (marker + restore.sh, the same script the
run and the watchdog use) or, when that is gone, from the local journal (the
original config bytes). A lock held by a run that is still alive is respected
(exit 75); one whose holder is provably dead (same machine, pid gone) or whose
watchdog deadline has passed is taken over. Where neither record can restore,
the node is reported NOT restored (exit 3) with the manual steps. Then what
interrupted `--mode concurrent` runs left beside the storage (markers, the trash
of swept blobs) goes, once no run can need it.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import structlog

from gcops import hostside
from gcops.state import journal
from gcops.maintenance import preflight
from gcops.config import Config, Instance
from gcops.containers import resolve as containers
from gcops.hostside import scripts
from gcops.hostside.kv import parse_kv_all
from gcops.errors import GcopsError, Refused
from gcops.transport.hosts import Host, connect
from gcops.maintenance import ssh_settings


def _node(host: Host, action: str, ok: bool, detail: str) -> dict:
    return {"host": host.name, "action": action, "ok": ok, "detail": detail}


def _manual_steps(instance: Instance, facts: preflight.NodeFacts) -> str:
    d = hostside.host_state_dir(instance.vars["config"])
    return (f"the host has the marker of {facts.leftover} but no restore script, and this machine has no journal "
            f"of that run: restore {instance.vars['config']} by hand (from {d}/original if it is there, else from "
            "your config management or backup), restart the registry, check that pushes work, then remove "
            f"{d}/marker and {d}/lock")


def recover_node(instance: Instance, host: Host, state_dir) -> dict:
    vars = instance.vars
    facts = preflight.gather(host, vars, registry_env=containers.registry_env_of(instance))
    intents = [i for i in journal.read_intents(state_dir, instance.name) if i.node == host.name]
    lock = facts.lock
    if lock is not None and not facts.lock_is_stale:
        return _node(host, "locked", False,
                     f"run {lock[0]} holds the lock ({facts.kv.get('lock_owner', '?')}) until its watchdog "
                     "deadline; try later")
    if facts.leftover or lock is not None:
        if facts.leftover is None or facts.kv.get("restore_script") == "yes":
            result = host.run(hostside.recover_command(vars["config"]), timeout=600, check=False)
            if result.exit_code == 0:
                node = _node(host, "restored from host record" if facts.leftover else "stale lock removed", True,
                             "restored and verified" if facts.leftover else f"run {lock[0]} changed nothing")
            else:
                node = _node(host, "restore failed", False, f"exit {result.exit_code}: {result.text.strip()[-300:]}")
        elif intents:
            node = _restore_from_journal(host, intents[-1])
        else:
            node = _node(host, "manual", False, _manual_steps(instance, facts))
    elif intents:
        intent = intents[-1]
        if facts.kv.get("config_sha256") != intent.original_sha256:
            node = _restore_from_journal(host, intent)
        else:
            node = _node(host, "journal cleared", True, "config already as it was")
    else:
        node = _node(host, "none", True, "nothing to recover")
    if node["ok"]:
        for intent in intents:
            journal.remove_intent(state_dir, instance.name, intent.node, intent.run_id)
    if facts.storage_root and facts.registry and facts.registry.storage_driver == "filesystem":
        node["detail"] += _remove_stale_concurrent(host, facts.storage_root, vars["config"])
    return node


def _remove_stale_concurrent(host: Host, storage_root: str, config_path: str) -> str:
    """What interrupted `--mode concurrent` runs left (markers; the trash of swept blobs, taking room):
    removed once none of them can still need it. Gives a note for the node's detail ("" when none)."""
    result = host.run(scripts.command("concurrent_stale", storage_root, hostside.host_state_dir(config_path)),
                      timeout=3600, check=False)
    said = parse_kv_all(result.text)
    removed = said.get("removed", [])
    note = f"; removed what concurrent run {', '.join(removed)} left (markers, swept blobs)" if removed else ""
    if result.exit_code != 0 or said.get("stale_done") != ["yes"]:
        note += f"; what interrupted concurrent runs left could not be checked: {result.text.strip()[-200:]}"
    return note


def _restore_from_journal(host: Host, intent: journal.Intent) -> dict:
    """The host lost its record: write the journal's bytes back (checked, renamed) and restart."""
    if not intent.original_b64:   # configs holding an S3 secret are not copied to the journal
        return {"host": host.name, "action": "no local copy", "ok": False,
                "detail": "the host lost its record and the config (it holds an S3 secret key) was not copied "
                          "to gcops' state dir: restore it from your configuration management"}
    original = intent.original
    if hashlib.sha256(original).hexdigest() != intent.original_sha256:
        return _node(host, "journal corrupt", False, "the local journal's config bytes do not match their checksum")
    if intent.mode == "stop":
        service = intent.start
    else:
        service = ":" if intent.already_read_only else intent.restart
    command = hostside.restore_bytes_command(intent.config_path, intent.original_sha256, service,
                                             intent.registry_url, intent.ca_file)
    result = host.run(command, input=original, timeout=600, check=False)
    ok = result.exit_code == 0
    return _node(host, "restored from local journal", ok,
                 "config bytes written back and service restarted" if ok
                 else f"failed (exit {result.exit_code}): {result.text.strip()[-300:]}")


def recover(config: Config, targets: Sequence[str]) -> tuple[dict, int]:
    log = structlog.get_logger()
    out, code = [], 0
    for instance in config.select(targets):
        nodes = []
        for address in instance.hosts:
            try:
                host = connect(address, ssh_settings(instance))
            except GcopsError as exc:
                nodes.append({"host": address, "action": "unreachable", "ok": False, "detail": str(exc)})
                continue
            try:
                resolved = containers.resolve(instance, host, instance.mode)   # the host paths of a container
                nodes.append(recover_node(resolved, host, config.settings.state_dir))
            except Refused as exc:
                nodes.append({"host": address, "action": "container", "ok": False, "detail": str(exc)})
            except GcopsError as exc:
                nodes.append({"host": address, "action": "failed", "ok": False, "detail": str(exc)})
            finally:
                host.close()
        for node in nodes:
            log.info("recover", instance=instance.name, host=node["host"], action=node["action"], ok=node["ok"])
            if not node["ok"]:
                code = max(code, 75 if node["action"] == "locked" else 3)
        out.append({"name": instance.name, "ok": all(n["ok"] for n in nodes), "nodes": nodes})
    if code == 75 and any(n["action"] != "locked" and not n["ok"] for i in out for n in i["nodes"]):
        code = 3
    return {"instances": out}, code
