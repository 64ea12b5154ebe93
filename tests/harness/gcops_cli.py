"""Run the real `gcops` command against test hosts: write its TOML config, run it as a process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[2]


def toml_str(value: str) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def instance_block(name: str, hosts, *, playbook: str = "distribution", vars: dict | None = None,
                   extra: str = "") -> str:
    """One [[instance]]; hosts: a TestHost, a list of them (HA), or "local"."""
    lines = ["[[instance]]", f"name = {toml_str(name)}"]
    if hosts == "local":
        lines.append('host = "local"')
    elif isinstance(hosts, (list, tuple)):
        lines.append("hosts = [" + ", ".join(toml_str(h.address) for h in hosts) + "]")
        hosts = hosts[0]
    else:
        lines.append(f"host = {toml_str(hosts.address)}")
    lines.append(f"playbook = {toml_str(playbook)}")
    if extra:
        lines.append(extra)
    if vars:
        lines.append("[instance.vars]")
        lines.extend(f"{k} = {toml_str(v)}" for k, v in vars.items())
    return "\n".join(lines) + "\n"


def write_config(path: Path, instances: Iterable[str], *, state_dir: Path, client_key: Path | None = None,
                 known_hosts: Path | None = None, gcops_extra: str = "", ssh_extra: str = "") -> Path:
    parts = ["[gcops]", f"state_dir = {toml_str(state_dir)}", 'max_window = "5m"', gcops_extra, "", "[ssh]"]
    if client_key:
        parts.append(f"identity_file = {toml_str(client_key)}")
    if known_hosts:
        parts.append(f"known_hosts = {toml_str(known_hosts)}")
    parts += [ssh_extra, ""]
    path.write_text("\n".join(parts) + "\n" + "\n".join(instances), encoding="utf-8")
    return path


def gcops_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gcops", *args]


def gcops_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCOPS_")}
    env["PYTHONPATH"] = str(REPO)
    return env


def run_gcops(*args: str, timeout: float = 300, host=None) -> subprocess.CompletedProcess:
    """gcops as a process, text output. With `host`, inside that test host's namespaces (host = "local")."""
    if host is not None:
        argv = host.nsenter_argv() + gcops_argv(*args)
        env = {**host.env(), "PYTHONPATH": str(REPO)}
    else:
        argv, env = gcops_argv(*args), gcops_env()
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO),
                          stdin=subprocess.DEVNULL)


def spawn_gcops(*args: str, host=None) -> subprocess.Popen:
    """gcops started in the background (for signals and kill -9 tests)."""
    if host is not None:
        argv = host.nsenter_argv() + gcops_argv(*args)
        env = {**host.env(), "PYTHONPATH": str(REPO)}
    else:
        argv, env = gcops_argv(*args), gcops_env()
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(REPO), stdin=subprocess.DEVNULL)


def json_doc(proc: subprocess.CompletedProcess) -> dict:
    try:
        return json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"stdout is not one JSON document (exit {proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}") from exc


SLOW_RESTART_PLAYBOOK = """\
# TEST FIXTURE (gcops integration tests): the distribution playbook, but the registry is down 1.5 s on each
# restart (as a registry draining its connections, or runit's restart, takes its time)
name = "slowrestart"
summary = "TEST FIXTURE: distribution with a slow restart"
[vars]
config = "/etc/docker/registry/config.yml"
registry = "/usr/bin/docker-registry"
registry_url = "http://127.0.0.1:5000"
registry_ca_file = ""
storage_root = ""
service = "docker-registry"
[commands]
restart = "systemctl stop {service} && sleep 1.5 && systemctl start {service}"
stop = "systemctl stop {service}"
start = "systemctl start {service}"
gc = "{registry} garbage-collect {config}"
"""
