"""`gcops recover`: put back what an interrupted run left changed.

Per node, from the host's own record (marker + restore.sh, the same script the
run and the watchdog use) or, when that is gone, from the local journal (the
original config bytes). A lock held by a run that is still alive is respected
(exit 75); one whose holder is provably dead (same machine, pid gone) or whose
watchdog deadline has passed is taken over.
"""
from __future__ import annotations

import hashlib
import socket
from typing import Sequence

import psutil
import structlog

from gcops import hostside, journal
from gcops.config import Config, Instance
from gcops.hosts import Host, HostError, connect
from gcops.maintenance import ssh_settings

STATE_SCRIPT = r"""D={d}; CFG={cfg}
[ -e "$D/marker" ] && echo "marker=$(head -n 1 "$D/marker")"
[ -d "$D/lock" ] && echo "lock_owner=$(head -n 1 "$D/lock/owner" 2>/dev/null)"
[ -d "$D/lock" ] && echo "deadline=$(cat "$D/deadline" 2>/dev/null)"
[ -f "$D/restore.sh" ] && echo "restore_script=yes"
[ -r "$CFG" ] && echo "config_sha256=$(sha256sum < "$CFG" | cut -d ' ' -f 1)"
echo "now=$(date +%s)"
"""


def _holder_alive(owner: str, deadline: int, now: int) -> bool:
    """Is the run named in lock/owner ("gcops@HOST pid N run ID") possibly still working?"""
    parts = owner.split()
    if len(parts) >= 3 and parts[0] == f"gcops@{socket.gethostname()}" and parts[1] == "pid":
        try:
            return psutil.pid_exists(int(parts[2])) and now <= deadline + 60
        except ValueError:
            pass
    return now <= deadline


def recover_node(instance: Instance, host: Host, state_dir) -> dict:
    vars = instance.vars
    d = hostside.host_state_dir(vars["config"])
    kv = hostside.parse_kv(host.run(STATE_SCRIPT.format(d=hostside.q(d), cfg=hostside.q(vars["config"])),
                                    timeout=60).text)
    node = {"host": host.name, "action": "none", "ok": True, "detail": "nothing to recover"}
    intents = [i for i in journal.read_intents(state_dir, instance.name) if i.node == host.name]
    lock_owner = kv.get("lock_owner")
    if lock_owner is not None and _holder_alive(lock_owner, int(kv.get("deadline") or 0), int(kv.get("now") or 0)):
        return {**node, "action": "locked", "ok": False,
                "detail": f"a run holds the lock ({lock_owner}) until its watchdog deadline; try later"}
    if "marker" in kv and kv.get("restore_script") == "yes":
        result = host.run(f"/bin/sh {hostside.q(d + '/restore.sh')} recover && rm -rf {hostside.q(d + '/lock')}",
                          timeout=600, check=False)
        ok = result.exit_code == 0
        node = {"host": host.name, "action": "restored from host record", "ok": ok,
                "detail": "restored and verified" if ok else f"restore failed: {result.text.strip()[-300:]}"}
    elif intents:
        intent = intents[-1]
        if kv.get("config_sha256") != intent.original_sha256:
            node = _restore_from_journal(host, intent, d)
        else:
            node = {**node, "action": "journal cleared", "detail": "config already as it was"}
    elif lock_owner is not None:
        host.run(f"rm -rf {hostside.q(d + '/lock')}", timeout=60)
        node = {**node, "action": "stale lock removed", "detail": lock_owner}
    if node["ok"]:
        for intent in intents:
            journal.remove_intent(state_dir, instance.name, intent.node)
    return node


def _restore_from_journal(host: Host, intent: journal.Intent, d: str) -> dict:
    """The host lost its record: write the journal's bytes back and restart."""
    if not intent.original_b64:   # hook(s3): configs holding an S3 secret are not copied to the journal
        return {"host": host.name, "action": "no local copy", "ok": False,
                "detail": "the host lost its record and the config (it holds an S3 secret key) was not copied "
                          "to gcops' state dir: restore it from your configuration management"}
    original = intent.original
    if hashlib.sha256(original).hexdigest() != intent.original_sha256:
        return {"host": host.name, "action": "journal corrupt", "ok": False,
                "detail": "the local journal's config bytes do not match their checksum"}
    cfg = hostside.q(intent.config_path)
    service = intent.start if intent.mode == "stop" else intent.restart
    script = (f"{hostside.replace_config_from_stdin(cfg)} && {{ {service}; }} && "
              f"rm -f {hostside.q(d + '/marker')} && rm -rf {hostside.q(d + '/lock')}")
    result = host.run(script, input=original, timeout=600, check=False)
    ok = result.exit_code == 0
    return {"host": host.name, "action": "restored from local journal", "ok": ok,
            "detail": "config bytes written back and service restarted" if ok
            else f"failed: {(result.stderr or result.stdout).decode('utf-8', 'replace').strip()[-300:]}"}


def recover(config: Config, targets: Sequence[str]) -> tuple[dict, int]:
    log = structlog.get_logger()
    out, code = [], 0
    for instance in config.select(targets):
        nodes = []
        for address in instance.hosts:
            try:
                host = connect(address, ssh_settings(instance))
            except HostError as exc:
                nodes.append({"host": address, "action": "unreachable", "ok": False, "detail": str(exc)})
                continue
            try:
                nodes.append(recover_node(instance, host, config.settings.state_dir))
            except HostError as exc:
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
