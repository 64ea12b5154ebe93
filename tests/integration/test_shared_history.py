"""Several control machines, one PostgreSQL history (issue 20): real gcops processes, real registries.

Each "control machine" is a gcops process with its own config and state dir; they share one
database on a real PostgreSQL server started by the tests.
"""
from __future__ import annotations

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, spawn_gcops, toml_str, write_config
from tests.integration.conftest import all_pull, finish, make_garbage, write_probe
from tests.integration.test_fleet import combined_known_hosts


def machine(tmp_path, name, db, instances, known_hosts, client_key):
    """One control machine: its own folder, state dir, metrics file and config (password in a file)."""
    home = tmp_path / name
    home.mkdir()
    secret = home / "history.secret"
    secret.write_text(db.password + "\n")
    secret.chmod(0o600)
    extra = (f"history = {toml_str(db.url)}\nhistory_password_file = {toml_str(secret)}\n"
             f"metrics_textfile = {toml_str(home / 'gcops.prom')}")
    return write_config(home / "gcops.toml", instances, state_dir=home / "state", client_key=client_key,
                        known_hosts=known_hosts, gcops_extra=extra)


def test_two_control_machines_at_once_one_history_one_report(host_factory, tmp_path, postgres_db):
    shared = tmp_path / "shared-storage"
    shared.mkdir()
    one, one_b = host_factory("one", storage_dir=shared), host_factory("oneb", storage_dir=shared)
    two = host_factory("two")
    make_garbage(one, tmp_path / "g1", kept=1, deleted=1)
    make_garbage(two, tmp_path / "g2", kept=1, deleted=1, seed=1)
    known = combined_known_hosts(tmp_path, [one, one_b, two])
    a = machine(tmp_path, "ops-a", postgres_db, [instance_block("one", one)], known, one.client_key)
    b = machine(tmp_path, "ops-b", postgres_db, [instance_block("two", two), instance_block("one", one),
                                                  instance_block("one-b", one_b)], known, one.client_key)

    procs = [spawn_gcops("-v", "--config", str(a), "run", "--json"),      # a fresh database: both migrate it
             spawn_gcops("-v", "--config", str(b), "run", "--json", "two")]
    outcomes = [finish(p, 180) for p in procs]
    for code, doc, err in outcomes:
        assert code == 0 and doc["instances"][0]["status"] == "ok", err
    run_ids = sorted(doc["run_id"] for _, doc, _ in outcomes)

    report = run_gcops("-v", "--config", str(b), "report", "--format", "json")
    assert report.returncode == 0, report.stderr
    runs = json_doc(report)["runs"]
    assert sorted(r["run_id"] for r in runs) == run_ids
    assert sorted(r["instances"][0]["name"] for r in runs) == ["one", "two"]
    assert sorted(json_doc(run_gcops("--config", str(a), "report", "--format", "json"))["runs"],
                  key=lambda r: r["run_id"]) == sorted(runs, key=lambda r: r["run_id"])

    # machine B never collected "one", yet it knows (from A's record) that one-b's storage is one's
    before = images.storage_du(one_b)
    refused = run_gcops("--config", str(b), "run", "--json", "one-b")
    assert refused.returncode == 1
    assert "was last collected as instance 'one'" in json_doc(refused)["instances"][0]["error"]
    assert images.storage_du(one_b) == before and write_probe(one_b) == 400

    seen = "".join(err for _, _, err in outcomes) + report.stdout + report.stderr + refused.stdout + refused.stderr
    seen += "".join((tmp_path / m / "gcops.prom").read_text() for m in ("ops-a", "ops-b"))
    assert 'gcops_last_run_success{instance="one"} 1.0' in seen
    assert postgres_db.password not in seen


def test_database_down_the_run_restores_keeps_its_record_and_the_next_run_sends_it(host_factory, tmp_path,
                                                                                 postgres_db):
    h = host_factory("pgdown")
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    config_before = h.config_file.read_bytes()
    config = machine(tmp_path, "ops", postgres_db, [instance_block("reg", h)], h.known_hosts, h.client_key)
    outbox = tmp_path / "ops" / "state" / "history-outbox"
    postgres_db.server.stop()

    down = run_gcops("-v", "--config", str(config), "run", "--json")
    doc = json_doc(down)
    assert down.returncode == 1, down.stderr
    assert doc["instances"][0]["status"] == "ok" and doc["instances"][0]["reclaimed_bytes"] > 0
    assert doc["exit_code"] == 1 and "not recorded" in doc["history_error"]
    said = [line for line in down.stderr.splitlines() if line.startswith("gcops: history:")]
    assert len(said) == 1 and f"{postgres_db.url}: cannot connect" in said[0] and str(outbox) in said[0]
    assert [p.name for p in outbox.glob("*.json")] == [f"{doc['run_id']}.json"]
    assert h.config_file.read_bytes() == config_before and write_probe(h) == 400 and all_pull(h, garbage.kept)
    metrics = (tmp_path / "ops" / "gcops.prom").read_text()   # metrics do not wait for the database
    assert 'gcops_last_run_success{instance="reg"} 1.0' in metrics and "gcops_history_unsent_runs 1.0" in metrics
    layout = images.build_layout(tmp_path / "after", "after", seed=7, layer_size=4096)
    assert images.push(h, layout, "after", "team/after")      # the registry takes pushes again

    postgres_db.server.start()
    again = run_gcops("-v", "--config", str(config), "run", "--json")
    assert again.returncode == 0, again.stderr
    assert list(outbox.glob("*.json")) == []
    assert "gcops_history_unsent_runs 0.0" in (tmp_path / "ops" / "gcops.prom").read_text()
    report = json_doc(run_gcops("--config", str(config), "report", "--format", "json"))
    assert [r["run_id"] for r in report["runs"]] == [doc["run_id"], json_doc(again)["run_id"]]
    assert report["runs"][0]["exit_code"] == 0        # the run itself succeeded; only its record waited
    assert postgres_db.password not in down.stderr + again.stderr + down.stdout + again.stdout
