"""Containerised registries: the engine's inspect output (recorded from podman 4.3 and from the docker CLI on
podman's API), REGISTRY_* overrides as distribution applies them, and the config keys and playbook table."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gcops.config import ConfigError, load_config
from gcops.containers import registry_env
from gcops.containers.inspect import ContainerFacts, InspectError
from gcops.playbooks import PlaybookError, find_playbook, load_playbook, render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "containers"


def recorded(engine: str) -> dict:
    return json.loads((FIXTURES / f"{engine}-inspect.json").read_text())[0]


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_inspect_gives_the_host_side_of_config_storage_and_port(engine):
    facts = ContainerFacts.parse(recorded(engine))
    assert facts.name == "registry" and facts.running and len(facts.id) == 64
    assert facts.config_path("/default.yml") == "/etc/docker/registry/config.yml"   # the arg after `serve`
    assert facts.registry_binary("/bin/other") == "/bin/registry"
    assert facts.host_path("/etc/docker/registry/config.yml") == "/tmp/rec/conf/config.yml"
    assert facts.host_path("/data") == "/tmp/rec/data"
    assert facts.host_path("/data/docker/registry/v2") == "/tmp/rec/data/docker/registry/v2"
    assert facts.host_path("/var/lib/registry") is None          # in the container's own layer
    assert facts.host_path("/database") is None                  # a prefix of a name is not a parent
    assert facts.published(5001) == ("127.0.0.1", "5123") and facts.published(5000) is None
    assert facts.env["REGISTRY_HTTP_ADDR"] == ":5001"
    assert facts.labels["com.docker.compose.service"] == "registry"


def test_registry2_entrypoint_script_and_wildcard_publish():
    doc = copy.deepcopy(recorded("podman"))
    doc.update(Path="/entrypoint.sh", Args=["/etc/docker/registry/config.yml"])
    doc["NetworkSettings"]["Ports"] = {"5000/tcp": [{"HostIp": "", "HostPort": "5000"}]}
    doc["Config"]["Env"].append("REGISTRY_CONFIGURATION_PATH=/conf/r.yml")
    facts = ContainerFacts.parse(doc)
    assert facts.registry_binary("/bin/registry") == "/bin/registry"    # the playbook's, not the script
    assert facts.config_path("/x.yml") == "/conf/r.yml"
    assert facts.published(5000) == ("127.0.0.1", "5000")
    doc["Config"]["Env"].pop()
    assert ContainerFacts.parse(doc).config_path("/x.yml") == "/etc/docker/registry/config.yml"


def test_inspect_without_an_id_is_an_error():
    with pytest.raises(InspectError):
        ContainerFacts.parse({"Config": {}})


def test_env_overrides_apply_as_distribution_does():
    config = {"version": 0.1, "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"},
                                          "Maintenance": {"uploadpurging": {"enabled": False}}},
              "http": {"addr": ":5000"}}
    env = {"REGISTRY_HTTP_ADDR": ":5001", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data",
           "REGISTRY_CONFIGURATION_PATH": "/x", "REGISTRY_STORAGE_DELETE_ENABLED": "true",
           "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED": "true", "PATH": "/bin"}
    out = registry_env.apply(config, env)
    assert out["http"]["addr"] == ":5001"
    assert out["storage"]["filesystem"]["rootdirectory"] == "/data"
    assert out["storage"]["delete"] == {"enabled": True}                   # YAML-decoded
    assert out["storage"]["Maintenance"]["uploadpurging"]["enabled"] is True   # keys matched without case
    assert "configuration" not in out and config["http"]["addr"] == ":5000"    # not a section; input kept
    # REGISTRY_STORAGE replaces the whole section (its string form: a driver with no parameters),
    # then the longer names fill it in, in name order
    out = registry_env.apply(config, {"REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE": "s3"})
    assert out["storage"] == {"s3": {"bucket": "b"}}


@pytest.mark.parametrize("name, fixed", [
    ("REGISTRY_STORAGE_MAINTENANCE_READONLY", True), ("REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED", True),
    ("REGISTRY_STORAGE_MAINTENANCE", True), ("REGISTRY_STORAGE", True),
    ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED", False), ("REGISTRY_STORAGE_DELETE_ENABLED", False),
    ("REGISTRY_HTTP_ADDR", False)])
def test_env_that_decides_read_only(name, fixed):
    assert registry_env.read_only_fixed_by({name: "x"}) == ([name] if fixed else [])


def test_builtin_container_commands_render_for_a_container():
    for name in ("distribution", "omnibus"):
        playbook = load_playbook(find_playbook(name, []))
        given = {**playbook.vars, **playbook.container_vars, "container_id": "0123abc"}
        gc = render(playbook.container_commands["gc"], given, raw={"engine": "env DOCKER_HOST=unix:///s docker"})
        assert gc.startswith("env DOCKER_HOST=unix:///s docker exec 0123abc ")
        assert gc.endswith(f"garbage-collect {playbook.vars['config']}")
    assert "stop" not in load_playbook(find_playbook("distribution", [])).container_commands


def test_playbook_container_table_is_checked(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nsummary = "s"\n[vars]\nconfig = "/c"\n[commands]\nrestart = "r"\nstop = "s"\n'
                    'start = "s"\ngc = "g {config}"\n[container]\nfoo = 1\n[container.vars]\nnope = "x"\n'
                    '[container.commands]\nrestart = "{engine} restart {container_id} {missing}"\nreboot = "x"\n')
    with pytest.raises(PlaybookError) as err:
        load_playbook(path)
    text = str(err.value)
    for key in ("container.foo", "container.vars.nope", "container.commands.gc", "container.commands.restart",
                "container.commands.reboot"):
        assert f"at '{key}'" in text, text


def _config(tmp_path, body: str) -> Path:
    path = tmp_path / "gcops.toml"
    path.write_text(f'[gcops]\nstate_dir = "{tmp_path}"\n[[instance]]\nname = "r"\nplaybook = "distribution"\n{body}')
    return path


@pytest.mark.parametrize("body, key, words", [
    ('host = "local"\nengine = "lxc"\ncontainer = "r"\n', "engine", "'lxc'"),
    ('host = "local"\ncontainer = "r"\n', "container", "engine"),
    ('host = "local"\nengine = "docker"\n', "engine", "name the container"),
    ('host = "local"\nengine = "docker"\ncontainer = "r"\n[instance.compose]\nproject = "p"\nservice = "s"\n',
     "compose", "not both"),
    ('host = "local"\nengine = "docker"\n[instance.compose]\nproject = "p"\n', "compose.service", "missing"),
    ('hosts = ["a", "b"]\nengine = "podman"\ncontainer = "r"\n', "hosts", "one engine host"),
])
def test_container_keys_bad_input_exit_2_naming_the_key(tmp_path, body, key, words):
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, body))
    line = [p for p in err.value.problems if f"at 'instance[0].{key}'" in p]
    assert line and words in line[0], err.value.problems


def test_container_keys_load(tmp_path):
    inst = load_config(_config(tmp_path, 'host = "local"\nengine = "podman"\n[instance.compose]\n'
                                         'project = "shop"\nservice = "registry"\n')).instances[0]
    assert (inst.container.engine, inst.container.compose_project, inst.container.compose_service) == \
        ("podman", "shop", "registry")
    assert inst.container.describe() == "compose service registry of project shop"


def test_the_effective_config_carries_env_only_redis_and_s3_settings():
    """A compose file may set the descriptor cache and the bucket by env alone: the readers of config bytes
    (the Redis purge, the S3 listing) get what the registry runs with."""
    from gcops.registry import redis_cache
    from gcops.storage import s3

    base = {"storage": {"filesystem": {"rootdirectory": "/var/lib/registry"}}, "http": {"addr": ":5000"}}
    env = {"REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR": "redis", "REGISTRY_REDIS_ADDR": "cache:6380",
           "REGISTRY_REDIS_DB": "2"}
    text = registry_env.yaml_bytes(registry_env.apply(base, env)).decode()
    settings = redis_cache.redis_settings(text)
    assert (settings.address, settings.port, settings.db) == ("cache", 6380, 2)
    env = {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "reg", "REGISTRY_STORAGE_S3_REGION": "eu-1"}
    params = s3.s3_parameters(registry_env.yaml_bytes(registry_env.apply(base, env)))
    assert params["bucket"] == "reg" and params["region"] == "eu-1"


class RecordedEngineHost:
    """TEST DOUBLE of a Host: answers the container lookup with recorded inspect output (unit tests only)."""

    name = "local"

    def __init__(self, doc: dict, exit_code: int = 0):
        self.doc, self.exit_code = doc, exit_code

    def run(self, command, *, input=None, timeout=None, check=True):
        from gcops.transport.hosts import Result

        text = f"engine_path=/usr/bin/docker\ndocker_host=\nids=registry\n--- inspect ---\n{json.dumps([self.doc])}\n"
        return Result(self.exit_code, text.encode() if self.exit_code == 0 else b"", b"")


def _resolved(doc: dict):
    from gcops.config import ContainerRef
    from gcops.containers.resolve import Resolved

    return Resolved(ref=ContainerRef(engine="docker", name="registry"), facts=ContainerFacts.parse(doc),
                    engine="docker", config_inside="/etc/docker/registry/config.yml", registry_inside="/bin/registry",
                    config_copied=False,
                    registry_env={})


def test_a_recreated_or_stopped_container_is_refused_naming_it():
    from dataclasses import dataclass

    from gcops.containers.resolve import ContainerRefused, ensure_same

    @dataclass(frozen=True)
    class Resolvable:
        resolved: object

    doc = recorded("docker")
    instance = Resolvable(_resolved(doc))
    assert ensure_same(instance, RecordedEngineHost(doc)) == instance       # the same one: nothing to say
    # the same container, restarted meanwhile (a crash, an admin): the restart proof starts from now
    later = {**doc, "State": {**doc["State"], "StartedAt": "2026-12-05T02:00:00.000000000Z"}}
    assert ensure_same(instance, RecordedEngineHost(later)).resolved.facts.started_at.startswith("2026-12-05T02:00")
    recreated = {**doc, "Id": "f" * 64}
    with pytest.raises(ContainerRefused, match=r"container registry was recreated \(id [0-9a-f]{12} is now ffff"):
        ensure_same(instance, RecordedEngineHost(recreated))
    stopped = {**doc, "State": {**doc["State"], "Running": False, "Status": "exited"}}
    with pytest.raises(ContainerRefused, match="container registry is not running"):
        ensure_same(instance, RecordedEngineHost(stopped))
