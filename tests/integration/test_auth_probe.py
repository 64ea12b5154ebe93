"""Read-only verified behind authentication (issue #10 item 2): htpasswd registries, real sshd, real gcops runs."""
from __future__ import annotations

import json

import pytest

from gcops.transport.hosts import ForwardingRefused, SSHSettings, connect
from gcops.registry import host_http, probe
from tests.harness import images, services
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config

USER, PASSWORD = "gcops-probe", "pr0be-secret-7f3a"
CREDS = (USER, PASSWORD)
NOOP_RESTART = """name = "noop-restart"
summary = "TEST FIXTURE: distribution, but its restart does nothing (a broken playbook)"
[vars]
config = "/etc/docker/registry/config.yml"
registry = "/usr/bin/docker-registry"
registry_url = "http://127.0.0.1:5000"
storage_root = ""
service = "docker-registry"
[commands]
restart = "true"
stop = "systemctl stop {service}"
start = "systemctl start {service}"
status = "systemctl is-active {service}"
gc = "{registry} garbage-collect {config}"
"""


def auth_host(host_factory, name, **kw):
    return host_factory(name, **services.htpasswd_auth("distribution", {USER: PASSWORD}), **kw)


def garbage(h, tmp_path, seed):
    """Two images pushed with credentials, the tag of the second deleted; gives (kept, deleted digests)."""
    imgs = [images.push(h, images.build_layout(tmp_path / f"oci-{seed}-{i}", f"t{i}", seed=seed * 10 + i,
                                               layer_size=16 * 1024), f"t{i}", "team/app", creds=CREDS)
            for i in range(2)]
    images.delete_tag(h, "team/app", imgs[1].tag, creds=CREDS)
    return imgs[0], imgs[1].blob_digests


def config(tmp_path, h, name, *, password: str | None = PASSWORD, playbook="distribution"):
    secret = tmp_path / f"{name}.secret"
    extra = ""
    if password is not None:
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        extra = f'probe = {{ username = "{USER}", password_file = "{secret}" }}'
    books = tmp_path / "playbooks"
    books.mkdir(exist_ok=True)
    (books / "noop-restart.toml").write_text(NOOP_RESTART)
    return write_config(tmp_path / f"{name}.toml", [instance_block("reg", h, playbook=playbook, extra=extra)],
                        state_dir=tmp_path / "state", client_key=h.client_key, known_hosts=h.known_hosts,
                        gcops_extra=f'playbook_dirs = ["{books}"]')


def on_disk(h, digests) -> bool:
    return bool(set(digests) & images.blob_digests_on_disk(h))


def test_probe_credentials_prove_read_only_behind_htpasswd(host_factory, tmp_path):
    h = auth_host(host_factory, "auth")
    kept, doomed = garbage(h, tmp_path, 1)
    before = h.config_file.read_bytes()

    # a wrong password: read-only cannot be proven, so nothing is collected and everything is restored
    proc = run_gcops("--config", str(config(tmp_path, h, "wrong", password="not-the-password")), "run", "--json")
    doc = json_doc(proc)
    inst = doc["instances"][0]
    assert proc.returncode == 1 and inst["status"] == "failed", proc.stderr
    assert "credentials were refused" in inst["error"]
    assert on_disk(h, doomed) and h.config_file.read_bytes() == before
    assert "not-the-password" not in proc.stdout + proc.stderr

    # the admin fixes the password: read-only proven by a 405, GC runs
    proc = run_gcops("--config", str(config(tmp_path, h, "right")), "run", "--json")
    doc = json_doc(proc)
    inst = doc["instances"][0]
    assert proc.returncode == 0 and inst["status"] == "ok", proc.stderr
    assert inst["read_only_verified"] is True
    assert inst["blobs_deleted"] > 0 and not on_disk(h, doomed)
    assert images.pulls(h, "team/app", kept.tag, creds=CREDS), h.last_pull_error
    assert h.config_file.read_bytes() == before
    # the probe created nothing, and the password is nowhere gcops writes
    assert not (h.storage_dir / "docker/registry/v2/repositories/gcops-probe").exists()
    assert PASSWORD not in proc.stdout + proc.stderr
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_without_credentials_gc_needs_a_real_restart(host_factory, tmp_path):
    # another registry on the same machine serving a config of the same path (a container, another
    # mount namespace), started earlier and never restarted: it must not count as ours
    host_factory("decoy")
    h = auth_host(host_factory, "noauth")
    kept, doomed = garbage(h, tmp_path, 2)
    before = h.config_file.read_bytes()

    # a restart that does nothing never leads to GC: without credentials (no restart seen) ...
    proc = run_gcops("--config", str(config(tmp_path, h, "noop", password=None, playbook="noop-restart")),
                     "run", "--json")
    inst = json_doc(proc)["instances"][0]
    assert proc.returncode == 1 and inst["status"] == "failed", proc.stderr
    assert "did not demonstrably restart" in inst["error"]
    assert on_disk(h, doomed) and h.config_file.read_bytes() == before
    # ... nor with credentials (the authenticated probe sees a writable registry)
    proc = run_gcops("--config", str(config(tmp_path, h, "noop-creds", playbook="noop-restart")), "run", "--json")
    inst = json_doc(proc)["instances"][0]
    assert proc.returncode == 1 and inst["status"] == "failed", proc.stderr
    assert "NOT read-only (write probe answered 400)" in inst["error"]
    assert on_disk(h, doomed) and h.config_file.read_bytes() == before

    # a real restart without credentials: GC runs, but the run says read-only was not verified
    proc = run_gcops("--config", str(config(tmp_path, h, "plain", password=None)), "run")
    assert proc.returncode == 0, proc.stderr
    assert "warning: read-only was NOT verified" in proc.stderr
    assert not on_disk(h, doomed)
    assert images.pulls(h, "team/app", kept.tag, creds=CREDS), h.last_pull_error
    report = run_gcops("--config", str(config(tmp_path, h, "plain", password=None)), "report", "--format", "json")
    runs = json.loads(report.stdout)["runs"]
    assert runs[-1]["instances"][0]["read_only_verified"] is False


@pytest.fixture
def ssh_host(client_key):
    hosts = []

    def open_(h):
        settings = SSHSettings(user="root", port=22, identity_file=client_key, known_hosts=h.known_hosts,
                               host_key_policy="strict", sudo=False, connect_timeout=10)
        hosts.append(connect(h.address, settings))
        return hosts[-1]
    yield open_
    for host in hosts:
        host.close()


def test_probe_falls_back_to_curl_where_forwarding_is_refused(host_factory, ssh_host):
    h = auth_host(host_factory, "nofwd", readonly=True, tcp_forwarding=False)
    host = ssh_host(h)
    with pytest.raises(ForwardingRefused):
        host.open_tcp("127.0.0.1", 5000)
    http = host_http.transport_for(host)
    url = "http://127.0.0.1:5000"
    seen = probe.write_probe(http, url, probe.ProbeCredentials(USER, PASSWORD))
    assert (seen.status, seen.auth, http.forwarding) == (405, "basic", False)
    assert probe.write_probe(http, url, None).status == 401
    assert probe.write_probe(http, url, probe.ProbeCredentials(USER, "wrong")).status == 401


def test_token_auth_probe_and_run(host_factory, tmp_path, ssh_host):
    """GitLab's case: Docker token auth. The probe gets a bearer token from the realm with its credentials."""
    keys = tmp_path / "token-keys"
    h = host_factory("token", **services.token_auth("distribution", keys, {USER: PASSWORD}))
    services.start_token_server(h, keys)
    host = ssh_host(h)
    url = "http://127.0.0.1:5000"
    writable = probe.write_probe(host_http.transport_for(host), url, probe.ProbeCredentials(USER, PASSWORD))
    assert (writable.status, writable.auth) == (400, "bearer"), writable   # authenticated, and writable
    wrong = probe.write_probe(host_http.transport_for(host), url, probe.ProbeCredentials(USER, "wrong"))
    assert (wrong.status, wrong.auth) == (401, "bearer")

    layout = images.build_layout(tmp_path / "oci", "v1", seed=5, layer_size=4096)
    pushed = images._skopeo(h, ["copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
                                f"oci:{layout}:v1", "docker://127.0.0.1:5000/team/app:v1"])   # skopeo does token auth
    assert pushed.returncode == 0, pushed.stderr
    proc = run_gcops("--config", str(config(tmp_path, h, "token")), "run", "--json")
    inst = json_doc(proc)["instances"][0]
    assert proc.returncode == 0 and inst["status"] == "ok", proc.stderr
    assert inst["read_only_verified"] is True
    assert PASSWORD not in proc.stdout + proc.stderr
