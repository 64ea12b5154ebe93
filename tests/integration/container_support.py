"""Fixtures of the container tests: podman's API service and the registry image, once per session;
registry containers per test (testcontainers), stopped and removed after it."""
from __future__ import annotations

import itertools
import os

import pytest

from tests.conftest import _on_ci
from tests.harness import containers
from tests.harness.gcops_cli import toml_str, write_config

_names = itertools.count()


def require_engine() -> None:
    """Fail (CI) or skip (elsewhere, loudly, with the reason) when podman and friends are missing."""
    reason = containers.missing_tools() if os.geteuid() == 0 else "container tests need root (rootful podman)"
    if reason:
        if _on_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def podman_api(tmp_path_factory):
    """podman system service on a socket of this session; DOCKER_HOST and testcontainers' settings set."""
    require_engine()
    service = containers.PodmanService(tmp_path_factory.mktemp("podman"))
    saved = {k: os.environ.get(k) for k in service.env}
    os.environ.update(service.env)
    yield service
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    service.close()


@pytest.fixture(scope="session")
def registry_image(podman_api, tmp_path_factory):
    return containers.build_registry_image(tmp_path_factory.mktemp("image"))


@pytest.fixture
def registry_container(registry_image, tmp_path):
    """registry_container(**start_registry kwargs) -> RegistryContainer, removed after the test."""
    started = []

    def start(**kwargs) -> containers.RegistryContainer:
        name = f"gcops-t{os.getpid()}-{next(_names)}"
        reg = containers.start_registry(registry_image, name, tmp_path / name, **kwargs)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        try:
            reg.stop()
        except Exception:  # noqa: BLE001 - a test may have removed it itself
            pass


def container_config(tmp_path, name: str, engine: str, *, container: str | None = None,
                     compose: tuple[str, str] | None = None, playbook: str = "distribution",
                     vars: dict | None = None, extra: str = "", state: str = "state", max_window: str = "5m"):
    """gcops.toml with one local containerised instance."""
    lines = ["[[instance]]", f"name = {toml_str(name)}", 'host = "local"', f"playbook = {toml_str(playbook)}",
             f"engine = {toml_str(engine)}"]
    if container is not None:
        lines.append(f"container = {toml_str(container)}")
    if max_window != "5m":
        lines.append(f"max_window = {toml_str(max_window)}")
    if compose is not None:
        lines += ["[instance.compose]", f"project = {toml_str(compose[0])}", f"service = {toml_str(compose[1])}"]
    if vars:
        lines.append("[instance.vars]")
        lines += [f"{k} = {toml_str(v)}" for k, v in vars.items()]
    lines.append(extra)   # tables ([[instance.retention]]...) last
    return write_config(tmp_path / f"gcops-{state}.toml", ["\n".join(lines)], state_dir=tmp_path / state)


@pytest.fixture
def omnibus_container(podman_api, tmp_path, tmp_path_factory):
    """A GitLab-shaped container (gitlab-ctl stand-in, data volume on the host), removed after the test."""
    image = containers.build_omnibus_image(tmp_path_factory.mktemp("omnibus-image"))
    name = f"gcops-t{os.getpid()}-{next(_names)}"
    reg = containers.start_omnibus(image, name, tmp_path / name)
    yield reg
    reg.stop()
