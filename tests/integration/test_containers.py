"""Containerised registries (issue 18): a `registry:2`-shaped container on podman, driven through the
`docker` CLI (podman's Docker-compatible API) and the `podman` CLI; containers started by testcontainers."""
from __future__ import annotations

import signal
import subprocess
import time

from tests.harness import containers, images
from tests.harness.gcops_cli import gcops_argv, gcops_env, json_doc, run_gcops, spawn_gcops, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, wait_for, write_probe
from tests.integration.container_support import (container_config, omnibus_container,  # noqa: F401
                                                 podman_api, registry_container, registry_image)
from tests.integration.test_run import WriteProber


def assert_reclaimed_within_1pct(inst, du_before, reg):
    real_drop = du_before - images.storage_du(reg)
    assert real_drop > 0
    assert abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop, (inst["reclaimed_bytes"], real_drop)
    assert inst["storage_bytes_before"] == du_before
    return real_drop


def test_docker_cli_bind_mounted_config_plan_run_restore(registry_container, tmp_path):
    reg = registry_container()
    garbage = make_garbage(reg, tmp_path, kept=2, deleted=2)
    config_before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    config = container_config(tmp_path, "ctr", "docker", container=reg.name)
    check = run_gcops("--config", str(config), "check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    checks = {c["name"]: c for c in json_doc(check)["instances"][0]["checks"]}
    assert checks["container"]["ok"] and str(reg.config_file) in checks["container"]["detail"]
    assert checks["storage_root"]["detail"] == str(reg.storage_dir)
    plan = run_gcops("--config", str(config), "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json_doc(plan)["instances"][0]["reclaimable_bytes"]
    prober = WriteProber(reg)
    proc = run_gcops("--config", str(config), "run", "--json")
    codes = [c for c, _ in prober.finish()]
    doc = json_doc(proc)
    assert proc.returncode == 0, proc.stderr
    inst = doc["instances"][0]
    assert inst["status"] == "ok" and inst["read_only_verified"] is True
    real_drop = assert_reclaimed_within_1pct(inst, du_before, reg)
    assert abs(planned - real_drop) <= 0.05 * real_drop, (planned, real_drop)
    assert 405 in codes and not [c for c in codes if isinstance(c, int) and c >= 500]
    assert reg.config_file.read_bytes() == config_before
    assert all_pull(reg, garbage.kept), reg.last_pull_error
    layout = images.build_layout(tmp_path / "after", "new", seed=99, layer_size=4096)
    assert images.pulls(reg, "team/new", images.push(reg, layout, "new", "team/new").tag)   # writes back
    assert inst["window_seconds"] > 0


def test_podman_cli_config_baked_into_the_image_restored_byte_for_byte(registry_container, tmp_path):
    reg = registry_container(bind_config=False)
    garbage = make_garbage(reg, tmp_path, kept=1, deleted=2)
    inside_before, du_before = reg.config_inside(), images.storage_du(reg)
    config = container_config(tmp_path, "baked", "podman", container=reg.name,
                              vars={"registry": "/bin/slow-registry-3"})
    proc = spawn_gcops("--config", str(config), "run", "--json")
    # while its GC runs (3 s late), the container itself refuses a push: the config inside it is read-only
    wait_for(lambda: write_probe(reg) == 405 or proc.poll() is not None, 60, "read-only inside the container")
    assert b"readonly" in reg.config_inside() and reg.config_inside() != inside_before
    code, doc, err = finish(proc)
    assert code == 0, err
    inst = doc["instances"][0]
    assert inst["status"] == "ok" and inst["read_only_verified"] is True
    assert_reclaimed_within_1pct(inst, du_before, reg)
    assert reg.config_inside() == inside_before
    assert write_probe(reg) == 400 and all_pull(reg, garbage.kept)


def test_sigkill_mid_window_engine_host_restores_and_next_run_succeeds(registry_container, tmp_path):
    reg = registry_container()
    garbage = make_garbage(reg, tmp_path, kept=1, deleted=1)
    original = reg.config_file.read_bytes()
    config = container_config(tmp_path, "kill", "docker", container=reg.name, max_window="10s",
                              vars={"registry": "/bin/slow-registry-120"})
    proc = spawn_gcops("--config", str(config), "run")
    gc_pid = reg.config_file.parent / ".gcops" / "gc.pid"
    wait_for(lambda: gc_pid.exists() or proc.poll() is not None, 60, "GC to start")
    assert proc.poll() is None and write_probe(reg) == 405
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # nobody acts: the watchdog on the engine host restores (the container restarted, its GC with it)
    state = reg.config_file.parent / ".gcops"
    try:
        wait_for(lambda: write_probe(reg) == 400 and reg.config_file.read_bytes() == original, 60,
                 "the engine host to restore itself")
    except AssertionError:
        log = (state / "watchdog.log").read_text() if (state / "watchdog.log").exists() else "no watchdog.log"
        raise AssertionError(f"not restored; {sorted(p.name for p in state.iterdir())}; {log}") from None
    wait_for(lambda: not (reg.config_file.parent / ".gcops" / "lock").exists(), 10, "the watchdog to unlock")
    assert "restored" in (reg.config_file.parent / ".gcops" / "watchdog.log").read_text()
    ps = subprocess.run(["podman", "top", reg.name, "args"], capture_output=True, text=True).stdout
    assert "garbage-collect" not in ps and "slow-registry" not in ps, ps
    assert all_pull(reg, garbage.kept)
    proc = run_gcops("--config", str(container_config(tmp_path, "kill", "docker", container=reg.name,
                                                        state="state2")), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_doc(proc)["instances"][0]["blobs_deleted"] > 0
    assert reg.config_file.read_bytes() == original


def test_compose_labels_and_registry_env_overrides(registry_container, tmp_path):
    """Found by its compose labels; REGISTRY_HTTP_ADDR and REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY honoured."""
    project, service = f"shop{time.monotonic_ns() % 10**6}", "registry"
    reg = registry_container(port=5001, storage_at="/data",
                             env={"REGISTRY_HTTP_ADDR": ":5001", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"},
                             labels={"com.docker.compose.project": project, "com.docker.compose.service": service})
    make_garbage(reg, tmp_path, kept=1, deleted=1)
    du_before = images.storage_du(reg)
    config = container_config(tmp_path, "compose", "podman", compose=(project, service))
    dry = run_gcops("--config", str(config), "run", "--dry-run")
    assert dry.returncode == 0 and "container_find.sh engine=podman project=" in dry.stdout, dry.stdout + dry.stderr
    assert images.storage_du(reg) == du_before and write_probe(reg) == 400     # the dry run changed nothing
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok", inst
    assert_reclaimed_within_1pct(inst, du_before, reg)
    # a second container with the same labels: which one is meant? refused, nothing touched
    reg2 = registry_container(labels={"com.docker.compose.project": project, "com.docker.compose.service": service})
    config2_before = reg2.config_file.read_bytes()
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1
    assert "2 containers match" in json_doc(proc)["instances"][0]["error"]
    assert reg2.config_file.read_bytes() == config2_before and write_probe(reg2) == 400


def test_env_that_fixes_read_only_is_refused_naming_it(registry_container, tmp_path):
    reg = registry_container(env={"REGISTRY_STORAGE_MAINTENANCE_READONLY": "{enabled: false}"})
    make_garbage(reg, tmp_path, kept=1, deleted=1)
    before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    proc = run_gcops("--config", str(container_config(tmp_path, "envro", "docker", container=reg.name)),
                     "run", "--json")
    assert proc.returncode == 1
    error = json_doc(proc)["instances"][0]["error"]
    assert "REGISTRY_STORAGE_MAINTENANCE_READONLY" in error and reg.name in error
    assert reg.config_file.read_bytes() == before and images.storage_du(reg) == du_before
    assert not (reg.config_file.parent / ".gcops").exists()


def test_bad_input_one_line_nothing_changed(registry_container, tmp_path):
    reg = registry_container()
    before = reg.config_file.read_bytes()
    # no such container: refused naming it
    proc = run_gcops("--config", str(container_config(tmp_path, "none", "docker", container="gcops-no-such")),
                     "run", "--json")
    assert proc.returncode == 1 and "gcops-no-such" in json_doc(proc)["instances"][0]["error"]
    # no such registry binary in the container: refused naming it
    proc = run_gcops("--config", str(container_config(tmp_path, "bin", "docker", container=reg.name,
                                                      vars={"registry": "/bin/nope"})), "check", "--json")
    checks = {c["name"]: c for c in json_doc(proc)["instances"][0]["checks"]}
    assert proc.returncode == 1 and not checks["container"]["ok"] and "/bin/nope" in checks["container"]["detail"]
    # an unknown engine: a config error, exit 2, one line naming the key
    proc = run_gcops("--config", str(container_config(tmp_path, "eng", "lxc", container=reg.name)), "run")
    assert proc.returncode == 2 and "engine" in proc.stderr and "lxc" in proc.stderr
    # an engine that does not answer: `check` names it
    env_config = container_config(tmp_path, "down", "docker", container=reg.name)
    down = subprocess.run(gcops_argv("--config", str(env_config), "check", "--json"), capture_output=True, text=True,
                          env={**gcops_env(), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert down.returncode == 1
    checks = {c["name"]: c for c in json_doc(down)["instances"][0]["checks"]}
    assert not checks["engine"]["ok"] and "docker" in checks["engine"]["detail"]
    # a stopped container: refused naming it
    subprocess.run(["podman", "stop", "-t", "2", reg.name], check=True, capture_output=True)
    proc = run_gcops("--config", str(container_config(tmp_path, "stopped", "podman", container=reg.name)),
                     "run", "--json")
    error = json_doc(proc)["instances"][0]["error"]
    assert proc.returncode == 1 and reg.name in error and "not running" in error
    assert reg.config_file.read_bytes() == before and not (reg.config_file.parent / ".gcops").exists()


def test_interrupted_gc_inside_the_container_is_ended_by_the_restore(registry_container, tmp_path):
    """A GC run by exec outlives its killed client; with read-only already on nothing restarts the container,
    so only the playbook's gc_stop ends it: none may survive the restore."""
    from tests.harness.containers import CONFIG

    read_only = CONFIG.replace("  delete:\n", "  maintenance:\n    readonly:\n      enabled: true\n  delete:\n")
    reg = registry_container()
    make_garbage(reg, tmp_path, kept=1, deleted=1)
    reg.config_file.write_text(read_only)   # the admin had put it read-only already
    subprocess.run(["podman", "restart", "-t", "1", reg.name], check=True, capture_output=True)
    reg.wait_ready()
    config = container_config(tmp_path, "ro", "docker", container=reg.name, vars={"registry": "/bin/slow-registry-120"})
    proc = spawn_gcops("--config", str(config), "run", "--json")
    wait_for(lambda: (reg.config_file.parent / ".gcops" / "gc.pid").exists() or proc.poll() is not None, 60,
             "GC to start")
    assert proc.poll() is None, proc.communicate()
    wait_for(lambda: "slow-registry" in _container_processes(reg), 10, "the GC inside the container")
    proc.send_signal(signal.SIGTERM)
    code, doc, err = finish(proc, 60)
    assert code == 130, err
    assert "slow-registry" not in _container_processes(reg) and "garbage-collect" not in _container_processes(reg)
    assert reg.config_file.read_text() == read_only and write_probe(reg) == 405   # still read-only, as before


def _container_processes(reg) -> str:
    return subprocess.run(["podman", "top", reg.name, "args"], capture_output=True, text=True).stdout


def test_omnibus_in_a_container_gitlab_ctl_by_exec_in_stop_mode(omnibus_container, tmp_path):
    reg = omnibus_container
    garbage = make_garbage(reg, tmp_path, kept=1, deleted=2)
    config_before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    started = containers.inspect(reg.name)["State"]["StartedAt"]
    config = container_config(tmp_path, "gitlab", "podman", container=reg.name, playbook="omnibus")
    proc = run_gcops("--config", str(config), "run", "--mode", "stop", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["mode"] == "stop" and inst["window_seconds"] > 0
    assert_reclaimed_within_1pct(inst, du_before, reg)
    assert reg.config_file.read_bytes() == config_before
    assert all_pull(reg, garbage.kept) and write_probe(reg) == 400
    # gitlab-ctl stopped and started the registry inside; the container itself ran on
    assert containers.inspect(reg.name)["State"]["StartedAt"] == started


def test_concurrent_mode_and_retention_on_a_container(registry_container, tmp_path):
    reg = registry_container()
    garbage = make_garbage(reg, tmp_path, kept=2, deleted=1)
    config_before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    config = container_config(tmp_path, "conc", "docker", container=reg.name,
                              extra='[[instance.retention]]\nname_regex = "t1"\nkeep_n = 0')
    proc = run_gcops("--config", str(config), "run", "--mode", "concurrent", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["mode"] == "concurrent" and inst["read_only_verified"] is True
    assert [(t["repository"], t["tag"]) for t in inst["tags_deleted"]] == [("team/app", "t1")]
    assert_reclaimed_within_1pct(inst, du_before, reg)
    assert reg.config_file.read_bytes() == config_before
    assert all_pull(reg, garbage.kept[:1]) and not images.pulls(reg, "team/app", "t1")


def test_recover_after_kill_copies_the_baked_config_back_into_the_container(registry_container, tmp_path):
    reg = registry_container(bind_config=False)
    garbage = make_garbage(reg, tmp_path, kept=1, deleted=1)
    inside_before = reg.config_inside()
    # the docker CLI here (the podman CLI in the other baked-config test): `docker cp` through the engine's API
    config = container_config(tmp_path, "rec", "docker", container=reg.name, vars={"registry": "/bin/slow-registry-120"})
    proc = spawn_gcops("--config", str(config), "run")
    wait_for(lambda: "slow-registry" in _container_processes(reg) or proc.poll() is not None, 60, "GC to start")
    assert proc.poll() is None and write_probe(reg) == 405 and reg.config_inside() != inside_before
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rec = run_gcops("--config", str(config), "recover", "--json")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert json_doc(rec)["instances"][0]["ok"]
    assert reg.config_inside() == inside_before and write_probe(reg) == 400
    assert "slow-registry" not in _container_processes(reg)
    assert all_pull(reg, garbage.kept)
    proc = run_gcops("--config", str(container_config(tmp_path, "rec", "docker", container=reg.name, state="s2")),
                     "run", "--json")
    assert proc.returncode == 0 and json_doc(proc)["instances"][0]["blobs_deleted"] > 0, proc.stderr
    assert reg.config_inside() == inside_before


def test_behind_htpasswd_the_container_restart_is_the_proof_of_read_only(registry_container, tmp_path):
    """No probe credentials: the write probe gets 401, and the registry's process is in another namespace; the
    engine's StartedAt of the container, later than the read-only config, is what lets the GC run."""
    import bcrypt

    from tests.harness.containers import CONFIG

    creds = ("admin", "s3cret")
    htpasswd = f"{creds[0]}:".encode() + bcrypt.hashpw(creds[1].encode(), bcrypt.gensalt(rounds=4)) + b"\n"
    config = CONFIG + "auth:\n  htpasswd:\n    realm: gcops-test\n    path: /etc/docker/registry/htpasswd\n"
    reg = registry_container(config=config, files={"/etc/docker/registry/htpasswd": htpasswd})
    kept, gone = (images.push(reg, images.build_layout(tmp_path / f"l{i}", f"t{i}", seed=40 + i, layer_size=65536),
                              f"t{i}", "team/app", creds=creds) for i in range(2))
    images.delete_tag(reg, "team/app", gone.tag, creds=creds)
    before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    proc = run_gcops("--config", str(container_config(tmp_path, "auth", "docker", container=reg.name)), "run", "--json")
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["read_only_verified"] is False
    assert_reclaimed_within_1pct(inst, du_before, reg)
    assert reg.config_file.read_bytes() == before and images.pulls(reg, "team/app", kept.tag, creds=creds)


def test_engine_host_reached_over_ssh(registry_container, podman_api, host_factory, tmp_path):
    """The engine host is an SSH host (a test host in its own network and mount namespaces): inspect, the
    config edit, the restarts, the GC by exec, the watchdog and the restore all run there, over SSH. Its
    `docker` is the real docker CLI talking to this machine's podman (as a host's docker talks to its own
    dockerd); it reaches the published port on its side of the link, so registry_url says where."""
    import shutil

    reg = registry_container()
    garbage = make_garbage(reg, tmp_path, kept=1, deleted=2)
    config_before, du_before = reg.config_file.read_bytes(), images.storage_du(reg)
    engine = host_factory("engine", start_registry=False)
    docker = engine.dir / "bin" / "docker"          # first on the engine host's PATH (/usr/local/sbin)
    docker.write_text(f"#!/bin/sh\nexec {shutil.which('docker')} -H unix://{podman_api.socket} \"$@\"\n")
    docker.chmod(0o755)
    block = "\n".join(["[[instance]]", 'name = "remote"', f'host = "{engine.address}"', 'playbook = "distribution"',
                       'engine = "docker"', f'container = "{reg.name}"', "[instance.vars]",
                       f'registry_url = "http://{engine.root_address}:{reg.port}"'])
    config = write_config(tmp_path / "gcops-remote.toml", [block], state_dir=tmp_path / "remote-state",
                          client_key=engine.client_key, known_hosts=engine.known_hosts)
    check = run_gcops("--config", str(config), "check", "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    prober = WriteProber(reg)
    proc = run_gcops("--config", str(config), "run", "--json")
    codes = [c for c, _ in prober.finish()]
    assert proc.returncode == 0, proc.stderr
    inst = json_doc(proc)["instances"][0]
    assert inst["status"] == "ok" and inst["read_only_verified"] is True and inst["hosts"] == [engine.address]
    assert_reclaimed_within_1pct(inst, du_before, reg)
    assert 405 in codes
    assert reg.config_file.read_bytes() == config_before
    assert not (reg.config_file.parent / ".gcops" / "lock").exists()
    assert all_pull(reg, garbage.kept), reg.last_pull_error
    layout = images.build_layout(tmp_path / "after", "new", seed=98, layer_size=4096)
    assert images.pulls(reg, "team/new", images.push(reg, layout, "new", "team/new").tag)   # writes back
