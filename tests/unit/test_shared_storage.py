"""Storage identity (storage_id.sh under dash and BusyBox) and the refusal of instances sharing one."""
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog

from gcops.state import history
from gcops.storage import identity
from gcops.storage.identity import IdentityError, Sighting, find_shared, identity_command, parse_identity

SHELLS = [pytest.param(shutil.which("dash") or "dash", id="dash",
                       marks=pytest.mark.skipif(not shutil.which("dash"), reason="dash not installed")),
          pytest.param(shutil.which("busybox") or "busybox", id="busybox-sh",
                       marks=pytest.mark.skipif(not shutil.which("busybox"), reason="busybox not installed"))]


def run(shell, command: str, applets: Path | None = None) -> subprocess.CompletedProcess:
    argv = [shell] + (["sh"] if shell.endswith("busybox") else [])
    line = " ".join(argv) + command[len("/bin/sh"):]
    env = {"PATH": str(applets) if applets else os.environ["PATH"]}
    return subprocess.run(line, shell=True, capture_output=True, text=True, env=env)


@pytest.fixture
def applets(tmp_path) -> Path:
    if not shutil.which("busybox"):
        pytest.skip("busybox not installed")
    d = tmp_path / "bb"
    d.mkdir()
    for name in ("sh", "ln", "readlink", "ls", "sed"):
        (d / name).symlink_to(shutil.which("busybox"))
    return d


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sB1", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


@pytest.mark.parametrize("shell", SHELLS)
def test_id_is_created_once_and_read_alike(shell, tmp_path, applets):
    root = tmp_path / "storage"
    (root / "docker/registry/v2").mkdir(parents=True)
    size = du(root)
    assert parse_identity(run(shell, identity_command(str(root), create=False)).stdout) is None
    first = run(shell, identity_command(str(root), create=True), applets)
    assert first.returncode == 0, first.stderr
    made = parse_identity(first.stdout)
    again = run(shell, identity_command(str(root), create=True))      # another instance, a new candidate id
    assert parse_identity(again.stdout) == made
    assert parse_identity(run(shell, identity_command(str(root), create=False), applets).stdout) == made
    assert du(root) == size                                           # no disk block: du figures unchanged
    assert sorted(p.name for p in root.iterdir()) == ["docker", "gcops-storage-id"]


@pytest.mark.parametrize("shell", SHELLS)
def test_a_foreign_file_is_an_error_not_an_identity(shell, tmp_path):
    (tmp_path / "gcops-storage-id").write_text("gcops-storage-" + "0" * 32)
    out = run(shell, identity_command(str(tmp_path), create=True))
    assert out.returncode != 0 and "not a symlink" in out.stderr
    os.unlink(tmp_path / "gcops-storage-id")
    os.symlink("/etc/passwd", tmp_path / "gcops-storage-id")
    assert run(shell, identity_command(str(tmp_path), create=False)).returncode != 0


@pytest.mark.parametrize("text", ["", "storage_id=nope\n", "garbage\n", "storage_id=gcops-storage-123\n"])
def test_parse_identity_rejects_garbage(text):
    with pytest.raises(IdentityError):
        parse_identity(text)


def inst(name, *hosts, config="/etc/docker/registry/config.yml"):
    return SimpleNamespace(name=name, hosts=tuple(hosts), vars={"config": config})


def test_two_instances_on_one_storage_are_both_refused():
    same = "gcops-storage-" + "a" * 32
    seen = [Sighting(inst("a", "10.0.0.1"), "/srv/reg", same), Sighting(inst("b", "10.0.0.2"), "/srv/reg", same),
            Sighting(inst("c", "10.0.0.3"), "/srv/reg", "gcops-storage-" + "c" * 32),
            Sighting(inst("d", "10.0.0.4"), error="unreachable")]
    refusals = find_shared(seen)
    assert sorted(refusals) == ["a", "b"]
    assert refusals["a"] == refusals["b"]
    assert "'a' and 'b'" in refusals["a"] and 'hosts = ["10.0.0.1", "10.0.0.2"]' in refusals["a"]


def test_the_same_registry_under_two_names_is_not_refused():
    same = "gcops-storage-" + "a" * 32
    seen = [Sighting(inst("a", "10.0.0.1"), "/srv/reg", same), Sighting(inst("b", "10.0.0.1"), "/srv/reg", same)]
    assert find_shared(seen) == {}
    other_config = Sighting(inst("c", "10.0.0.1", config="/etc/other.yml"), "/srv/reg", same)
    assert sorted(find_shared(seen + [other_config])) == ["a", "b", "c"]


def config(tmp_path, *names):
    return SimpleNamespace(settings=SimpleNamespace(state_dir=tmp_path),
                           instances=tuple(inst(n, f"10.0.0.{i}") for i, n in enumerate(names, 1)))


def test_storage_last_collected_by_another_configured_instance_is_refused(tmp_path):
    sid = "gcops-storage-" + "b" * 32
    store = history.SqliteHistory(history.db_path(tmp_path))
    store.record_storage_owners([history.StorageOwner.at(sid, "a", "run-1", datetime(2026, 11, 1, tzinfo=timezone.utc))])
    assert store.storage_owner(sid) == {"instance": "a", "run_id": "run-1",
                                                    "seen_at": "2026-11-01T00:00:00Z"}
    log = structlog.get_logger()
    cfg = config(tmp_path, "a", "b")
    b = Sighting(cfg.instances[1], "/srv/reg", sid)
    refusals = identity.screen(cfg, [b], log).refusals
    assert "'a' (run run-1)" in refusals["b"] and 'hosts = ["10.0.0.1", "10.0.0.2"]' in refusals["b"]
    # the same instance again, or a name the config no longer has (a rename, a merge into one HA
    # instance): no refusal
    assert identity.screen(cfg, [Sighting(cfg.instances[0], "/srv/reg", sid)], log).refusals == {}
    renamed = config(tmp_path, "b")
    assert identity.screen(renamed, [Sighting(renamed.instances[0], "/srv/reg", sid)], log).refusals == {}


def test_no_history_yet_is_no_owner(tmp_path):
    assert history.SqliteHistory(tmp_path / "none" / "history.sqlite3").storage_owner("gcops-storage-" + "0" * 32) is None


def test_s3_storages_are_recognised_by_endpoint_bucket_and_root():
    from gcops.storage.identity import STORAGE_ID, bucket_identity

    def config(root, bucket="registry"):
        return (f"version: 0.1\nstorage:\n  s3:\n    bucket: {bucket}\n    regionendpoint: http://s3.example:9000/\n"
                f"    rootdirectory: {root}\n    secretkey: not-in-the-id\n")

    where, one = bucket_identity(config("/reg"))
    assert STORAGE_ID.fullmatch(one) and "registry" in where and "not-in-the-id" not in where
    assert bucket_identity(config("reg/"))[1] == one                  # the same place, spelled differently
    assert bucket_identity(config("/other"))[1] != one
    assert bucket_identity(config("/reg", bucket="another"))[1] != one


def test_a_screen_that_cannot_look_refuses_that_instance_only(tmp_path):
    """A failing guard refuses (the cause named), never passes; the other instances are screened as usual."""
    log = structlog.get_logger()
    cfg = config(tmp_path, "a", "b")
    sid = "gcops-storage-" + "d" * 32
    seen = [Sighting(cfg.instances[0], error="storage_id: /srv/reg/gcops-storage-id is not a symlink; not gcops'"),
            Sighting(cfg.instances[1], "/srv/other", sid)]
    refusals = identity.screen(cfg, seen, log).refusals
    assert list(refusals) == ["a"]
    assert refusals["a"].startswith("shared-storage screen failed on 10.0.0.1: its storage could not be identified: "
                                    "storage_id: /srv/reg/gcops-storage-id is not a symlink")
    history.db_path(tmp_path).write_text("not a database\n")        # the history cannot be read
    refusals = identity.screen(cfg, seen[1:], log).refusals
    assert list(refusals) == ["b"] and "history of who collected its storage could not be read" in refusals["b"]


def test_a_shared_history_that_is_down_screens_against_this_machines_copy(tmp_path):
    """PostgreSQL down: the run still happens (issue 20), but the owner check is never skipped: it uses the
    owners this machine read or recorded before (its copy and its outbox), and says so."""
    from gcops.state.history.postgresql import PostgresHistory

    cfg = config(tmp_path, "a", "b")
    sid, other = "gcops-storage-" + "e" * 32, "gcops-storage-" + "f" * 32
    down = PostgresHistory("postgresql://gcops@127.0.0.1:1/gcops", None)      # nothing listens on port 1
    log = structlog.get_logger()
    assert identity.screen(cfg, [Sighting(cfg.instances[1], "/srv/reg", sid)], log, down).refusals == {}
    # this machine recorded 'a' on sid (a run kept in its outbox while the database was down)
    history.Outbox(tmp_path).keep({"run_id": "20261101T000000Z-aaaa", "instances": []},
                                  [history.StorageOwner.at(sid, "a", "20261101T000000Z-aaaa",
                                                           datetime(2026, 11, 1, tzinfo=timezone.utc))])
    refusals = identity.screen(cfg, [Sighting(cfg.instances[1], "/srv/reg", sid)], log, down).refusals
    assert "'a' (run 20261101T000000Z-aaaa)" in refusals["b"]
    # an owner read from a reachable history earlier is remembered for the day it is down
    up = history.SqliteHistory(history.db_path(tmp_path / "up"))
    up.record_storage_owners([history.StorageOwner.at(other, "a", "run-9", datetime(2026, 11, 2, tzinfo=timezone.utc))])
    assert identity.screen(cfg, [Sighting(cfg.instances[0], "/srv/o", other)], log, up).refusals == {}
    refusals = identity.screen(cfg, [Sighting(cfg.instances[1], "/srv/o", other)], log, down).refusals
    assert "'a' (run run-9)" in refusals["b"]
