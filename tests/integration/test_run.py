"""`gcops run` on real registries, over SSH and locally (issue 2)."""
from __future__ import annotations

import http.client
import threading
import time

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, slow_registry, spawn_until_gc


def config_for(tmp_path, host, name="reg", **kw):
    return write_config(tmp_path / "gcops.toml", [instance_block(name, host, **kw)], state_dir=tmp_path / "state",
                        client_key=host.client_key, known_hosts=host.known_hosts)


def assert_reclaimed(doc, host, du_before, blobs_before):
    inst = doc["instances"][0]
    real_drop = du_before - images.storage_du(host)
    assert real_drop > 0
    assert abs(inst["reclaimed_bytes"] - real_drop) <= 0.01 * real_drop, (inst["reclaimed_bytes"], real_drop)
    gone = blobs_before - images.blob_digests_on_disk(host)
    assert inst["blobs_deleted"] == len(gone) > 0
    assert inst["storage_bytes_before"] == du_before
    assert doc["totals"]["reclaimed_bytes"] == inst["reclaimed_bytes"]


class WriteProber:
    """A client trying to push (manifest PUT) all through the run: records every answer."""

    def __init__(self, host):
        self.host, self.codes, self.stop = host, [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                code = self.host.http("PUT", "/v2/probe/app/manifests/x", body=b"{}", timeout=5,
                                      headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})[0]
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                code = "restarting"       # refused or closed at once by a restarting registry: not a hang
            except OSError as exc:
                code = f"error: {exc}"    # a timeout (hang) lands here
            self.codes.append((code, time.monotonic() - t0))
            time.sleep(0.005)

    def finish(self):
        self.stop.set()
        self.thread.join()
        return self.codes


def test_run_over_ssh_reclaims_and_restores(host_factory, tmp_path):
    h = host_factory("ssh")
    garbage = make_garbage(h, tmp_path)
    config_before = h.config_file.read_bytes()
    du_before, blobs_before = images.storage_du(h), images.blob_digests_on_disk(h)
    prober = WriteProber(h)
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--json")
    codes = prober.finish()
    doc = json_doc(proc)
    assert proc.returncode == 0, proc.stderr
    assert doc["instances"][0]["status"] == "ok" and doc["exit_code"] == 0
    assert_reclaimed(doc, h, du_before, blobs_before)
    assert all_pull(h, garbage.kept), h.last_pull_error
    assert h.config_file.read_bytes() == config_before
    # a client pushing during the run saw 405 while writes were refused; never a 5xx, never a hang
    answers = [c for c, _ in codes]
    assert 405 in answers
    assert not [c for c in answers if isinstance(c, int) and c >= 500]
    assert not [c for c in answers if isinstance(c, str) and c.startswith("error")], codes
    assert max(t for _, t in codes) < 5
    # writes accepted after: a real push works
    layout = images.build_layout(tmp_path / "after", "new", seed=99, layer_size=4096)
    assert images.pulls(h, "team/new", images.push(h, layout, "new", "team/new").tag)
    # probes left nothing behind
    assert not (h.storage_dir / "docker/registry/v2/repositories/gcops-probe").exists()
    assert doc["instances"][0]["window_seconds"] > 0


def test_push_during_gc_is_refused_with_405(host_factory, tmp_path):
    h = host_factory("slowgc")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    # the real registry binary started 3 s late, so a client can try to push during GC
    proc = spawn_until_gc(h, config_for(tmp_path, h, vars={"registry": str(slow_registry(tmp_path, 3))}),
                          "run", "--json")
    layout = images.build_layout(tmp_path / "during", "d", seed=7, layer_size=4096)
    push = images._skopeo(h, ["copy", "--dest-tls-verify=false", f"oci:{layout}:d",
                              "docker://127.0.0.1:5000/team/during:d"], timeout=30)
    assert push.returncode != 0 and b"405" in push.stderr + push.stdout, push.stderr
    assert h.http("POST", "/v2/team/during/blobs/uploads/")[0] == 405
    code, _, err = finish(proc)
    assert code == 0, err
    assert images.push(h, layout, "d", "team/during")  # accepted after the run


def test_run_local_opens_no_ssh_connection(host_factory, tmp_path):
    h = host_factory("local")
    garbage = make_garbage(h, tmp_path)
    config_before = h.config_file.read_bytes()
    du_before, blobs_before = images.storage_du(h), images.blob_digests_on_disk(h)
    h.stop_sshd()   # nothing could answer SSH: the run must not need it
    config = write_config(tmp_path / "gcops.toml", [instance_block("here", "local")], state_dir=tmp_path / "state")
    proc = run_gcops("--config", str(config), "run", "--json", host=h)
    doc = json_doc(proc)
    assert proc.returncode == 0, proc.stderr
    assert doc["instances"][0]["hosts"] == ["local"]
    assert_reclaimed(doc, h, du_before, blobs_before)
    assert all_pull(h, garbage.kept)
    assert h.config_file.read_bytes() == config_before


def test_changed_host_key_is_refused_and_host_untouched(host_factory, tmp_path):
    h = host_factory("mitm")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    wrong = tmp_path / "known_hosts"
    h.write_wrong_known_hosts(wrong)
    config_before, du_before = h.config_file.read_bytes(), images.storage_du(h)
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=wrong)
    proc = run_gcops("--config", str(config), "run", "--json")
    doc = json_doc(proc)
    assert proc.returncode == 1
    assert "host key" in doc["instances"][0]["error"].lower() and doc["instances"][0]["status"] == "skipped"
    assert h.config_file.read_bytes() == config_before and images.storage_du(h) == du_before
    assert not (h.config_file.parent / ".gcops").exists()


def test_unknown_host_key_refused_under_strict_and_learned_with_accept_new(host_factory, tmp_path):
    h = host_factory("tofu")
    empty = tmp_path / "kh"
    empty.write_text("")
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=empty)
    proc = run_gcops("--config", str(config), "check", "--json")
    assert proc.returncode == 1 and "known_hosts" in proc.stdout
    config = write_config(tmp_path / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=empty, ssh_extra='host_key_policy = "accept-new"')
    proc = run_gcops("--config", str(config), "check", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert h.address in empty.read_text()
    # a changed key is refused even with accept-new
    h.write_wrong_known_hosts(empty)
    proc = run_gcops("--config", str(config), "check", "--json")
    assert proc.returncode == 1 and "CHANGED" in proc.stdout


def test_check_reports_every_fact_and_changes_nothing(host_factory, tmp_path):
    h = host_factory("chk")
    before = h.config_file.read_bytes()
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "check", "--json")
    doc = json_doc(proc)
    assert proc.returncode == 0, proc.stderr
    names = {c["name"]: c["ok"] for c in doc["instances"][0]["checks"]}
    for name in ("reachable", "config_readable", "config_parsed", "metadata_database", "storage_driver",
                 "storage_root", "registry_answering", "gc_binary", "lock"):
        assert names.get(name) is True, (name, doc)
    assert h.config_file.read_bytes() == before
    table = run_gcops("--config", str(config_for(tmp_path, h)), "check")
    assert table.returncode == 0 and "registry_answering" in table.stdout


def test_dry_run_prints_steps_and_changes_nothing(host_factory, tmp_path):
    h = host_factory("dry")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    before, du = h.config_file.read_bytes(), images.storage_du(h)
    proc = run_gcops("--config", str(config_for(tmp_path, h)), "run", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "systemctl restart docker-registry" in proc.stdout
    assert "/usr/bin/docker-registry garbage-collect /etc/docker/registry/config.yml" in proc.stdout
    assert "+      enabled: true" in proc.stdout
    assert h.config_file.read_bytes() == before and images.storage_du(h) == du
    assert not (h.config_file.parent / ".gcops").exists()
    assert not (tmp_path / "state" / "history.sqlite3").exists()
