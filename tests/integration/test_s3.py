"""Registries on S3-compatible storage (issue 11): Debian's docker-registry storing into a real moto
server process that checks signatures, gcops over SSH measuring the bucket from this machine."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from tests.harness import images
from tests.harness.gcops_cli import REPO, gcops_argv, gcops_env, instance_block, json_doc, write_config
from tests.harness.s3server import s3_registry_config, start_s3_server
from tests.integration.conftest import all_pull, make_garbage, write_probe
from tests.integration.test_run import WriteProber

BUCKET = "registry"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = start_s3_server(tmp_path_factory.mktemp("moto"), auth=True)
    server.client().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def s3_host(host_factory, server, name):
    """A test host whose registry stores into the bucket under /<name> (each test its own root)."""
    host = host_factory(name, registry_config=lambda h: s3_registry_config(
        server, h, bucket=BUCKET, rootdirectory=f"/{name}"))
    host.s3_root = f"{name}/"
    return host


def gcops(tmp_path, host, endpoint, *args, s3_extra: str = "", env: dict | None = None, name: str = "s3reg",
          vars: dict | None = None):
    """Run gcops with an [instance.s3] whose endpoint is the one THIS machine reaches (not the host's)."""
    s3 = f'\n[instance.s3]\nendpoint_url = "{endpoint}"\n{s3_extra}'
    block = instance_block(name, host, vars=vars) + s3
    config = write_config(tmp_path / "gcops.toml", [block], state_dir=tmp_path / "state",
                          client_key=host.client_key, known_hosts=host.known_hosts,
                          gcops_extra=f'metrics_textfile = "{tmp_path / "metrics" / "gcops.prom"}"')
    (tmp_path / "metrics").mkdir(exist_ok=True)
    proc = subprocess.run(gcops_argv("--config", str(config), *args), capture_output=True, text=True,
                          timeout=300, env={**gcops_env(), **(env or {})}, cwd=str(REPO), stdin=subprocess.DEVNULL)
    return proc


def bucket_state(server, host) -> tuple[int, set[str], set[str]]:
    """(bytes under the registry root, every key, blob data keys): the test's own sequential walk."""
    total, keys = server.bucket_bytes(BUCKET, host.s3_root)
    blobs = {k for k in keys if k.startswith(host.s3_root + "docker/registry/v2/blobs/sha256/") and k.endswith("/data")}
    return total, keys, blobs


def secret_forms(secret: str) -> list[bytes]:
    """The secret as bytes, and inside base64 text at any of the three alignments."""
    forms = [secret.encode()]
    for pad in range(3):
        enc = base64.b64encode(b"\0" * pad + secret.encode())
        forms.append(enc[4 if pad else 0:-4])
    return forms


def assert_secret_nowhere(secret: str, proc, tmp_path):
    forms = secret_forms(secret)
    for stream in (proc.stdout, proc.stderr):
        assert not any(f.decode() in stream for f in forms)
    for path in list((tmp_path / "state").rglob("*")) + list((tmp_path / "metrics").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            assert not any(f in data for f in forms), path


class JournalWatcher:
    """Reads every local journal file while a run goes on (an intent lives only during the window)."""

    def __init__(self, state_dir):
        self.dir, self.seen, self.stop = state_dir / "journal", [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            for path in list(self.dir.rglob("*.json")) if self.dir.exists() else []:
                try:
                    self.seen.append(path.read_bytes())
                except OSError:
                    pass
            time.sleep(0.02)

    def finish(self) -> list[bytes]:
        self.stop.set()
        self.thread.join()
        return self.seen


def test_plan_then_run_on_s3_over_ssh(host_factory, s3_server, tmp_path):
    h = s3_host(host_factory, s3_server, "s3run")
    garbage = make_garbage(h, tmp_path, kept=2, deleted=2)
    config_before = h.config_file.read_bytes()
    bytes_before, keys_before, blobs_before = bucket_state(s3_server, h)

    plan = gcops(tmp_path, h, s3_server.url, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json_doc(plan)["instances"][0]
    assert planned["error"] is None, planned
    assert bucket_state(s3_server, h)[1] == keys_before          # plan changed nothing
    assert planned["storage_bytes"] == bytes_before

    dry = gcops(tmp_path, h, s3_server.url, "run", "--dry-run")
    assert dry.returncode == 0 and "secretkey: ***" in dry.stdout and f"s3://{BUCKET}/s3run" in dry.stdout
    assert_secret_nowhere(s3_server.secret_key, dry, tmp_path)
    assert bucket_state(s3_server, h)[1] == keys_before and h.config_file.read_bytes() == config_before

    # the registry's own GC, run by gcops on the host, is slowed so a pushing client meets the window
    slow = tmp_path / "slow-registry"
    slow.write_text("#!/bin/sh\nsleep 1\nexec /usr/bin/docker-registry \"$@\"\n")
    slow.chmod(0o755)
    prober, journal = WriteProber(h), JournalWatcher(tmp_path / "state")
    run = gcops(tmp_path, h, s3_server.url, "-v", "run", "--json", vars={"registry": str(slow)})
    codes = [c for c, _ in prober.finish()]
    seen = journal.finish()
    assert seen, "no journal intent was seen during the window"       # the intent was written, without the secret
    assert not any(f in data for data in seen for f in secret_forms(s3_server.secret_key))
    doc = json_doc(run)
    assert run.returncode == 0, run.stderr[-3000:]
    inst = doc["instances"][0]
    assert (inst["status"], inst["storage_driver"], inst["fs_used_bytes_before"]) == ("ok", "s3", None)

    bytes_after, keys_after, blobs_after = bucket_state(s3_server, h)
    drop = bytes_before - bytes_after
    assert drop > 0
    assert inst["storage_bytes_before"] == bytes_before
    assert abs(inst["reclaimed_bytes"] - drop) <= 0.01 * drop, (inst["reclaimed_bytes"], drop)
    assert inst["blobs_deleted"] == len(blobs_before - blobs_after) > 0
    assert (inst["blobs_before"], inst["blobs_after"]) == (len(blobs_before), len(blobs_after))
    assert abs(planned["reclaimable_bytes"] - inst["reclaimed_bytes"]) <= 0.05 * inst["reclaimed_bytes"]

    assert all_pull(h, garbage.kept), h.last_pull_error
    assert not any(images.pulls(h, img.repo, img.manifest_digest) for img in garbage.deleted)
    assert h.config_file.read_bytes() == config_before
    assert 405 in codes and not [c for c in codes if isinstance(c, int) and c >= 500]
    assert write_probe(h) == 400                                # writes accepted again (bad body: 400)
    layout = images.build_layout(tmp_path / "after", "new", seed=77, layer_size=4096)
    assert images.pulls(h, "team/new", images.push(h, layout, "new", "team/new").tag)

    metrics = (tmp_path / "metrics" / "gcops.prom").read_text()
    assert f'gcops_reclaimed_bytes{{instance="s3reg"}} {inst["reclaimed_bytes"]}' in metrics
    assert_secret_nowhere(s3_server.secret_key, plan, tmp_path)
    assert_secret_nowhere(s3_server.secret_key, run, tmp_path)
    report = subprocess.run(gcops_argv("--config", str(tmp_path / "gcops.toml"), "report", "--format", "json"),
                            capture_output=True, text=True, env=gcops_env(), cwd=str(REPO), timeout=60)
    assert json.loads(report.stdout)["runs"][0]["instances"][0]["storage_driver"] == "s3"
    assert s3_server.secret_key not in report.stdout


def test_bucket_problems_are_named_and_refused(host_factory, s3_server, tmp_path):
    """Wrong credentials, a missing bucket, an unreachable endpoint: `check` names each, `run` refuses
    (exit 1) and nothing changes; then, with the problem fixed, the user's next run works."""
    h = s3_host(host_factory, s3_server, "s3bad")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    config_sha = hashlib.sha256(h.config_file.read_bytes()).hexdigest()
    keys_before = bucket_state(s3_server, h)[1]
    creds = tmp_path / "aws-credentials"      # the key this machine uses was rotated away
    creds.write_text(f"[gc]\naws_access_key_id = {s3_server.access_key}\n"
                     "aws_secret_access_key = not-the-secret-any-more\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cases = [
        ("s3_credentials", s3_server.url, 'profile = "gc"',
         {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": os.devnull}, "SignatureDoesNotMatch"),
        ("bucket", s3_server.url, 'bucket = "no-such-bucket"', {}, "does not exist"),
        ("bucket_reachable", closed, "", {}, "cannot connect to " + closed),
    ]
    for check_name, endpoint, extra, env, words in cases:
        check = gcops(tmp_path, h, endpoint, "check", "--json", s3_extra=extra, env=env)
        checks = {c["name"]: c for c in json_doc(check)["instances"][0]["checks"]}
        assert check.returncode == 1 and checks[check_name]["ok"] is False, checks
        assert words in checks[check_name]["detail"]
        assert checks["registry_answering"]["ok"] is True        # every other fact still reported
        run = gcops(tmp_path, h, endpoint, "run", "--json", s3_extra=extra, env=env)
        doc = json_doc(run)
        assert run.returncode == 1 and doc["instances"][0]["status"] == "skipped"
        assert check_name in doc["instances"][0]["error"]
        # nothing changed: config, bucket, registry still takes writes, no marker left
        assert hashlib.sha256(h.config_file.read_bytes()).hexdigest() == config_sha
        assert bucket_state(s3_server, h)[1] == keys_before
        assert write_probe(h) == 400
        assert not (h.config_file.parent / ".gcops" / "marker").exists()
        assert_secret_nowhere(s3_server.secret_key, run, tmp_path)
    fixed = gcops(tmp_path, h, s3_server.url, "run", "--json")
    assert fixed.returncode == 0 and json_doc(fixed)["instances"][0]["reclaimed_bytes"] > 0, fixed.stderr[-2000:]
