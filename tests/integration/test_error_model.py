"""One error model (issue 19): an error of one instance is that instance's, never the whole command's."""
from __future__ import annotations

from tests.harness import images
from tests.harness.gcops_cli import instance_block, json_doc, run_gcops, write_config
from tests.integration.conftest import make_garbage
from tests.integration.test_fleet import combined_known_hosts

RULE = '[[instance.retention]]\nrepositories = "team/.*"\nname_regex = ".*"\nkeep_n = 5\n'


def nonsense_clock(h) -> None:
    """TEST FIXTURE: a `date` stand-in on the host's PATH whose epoch (`date +%s`) is not a number,
    so the tag listing of that host cannot be read."""
    stub = h.dir / "bin" / "date"
    stub.write_text("#!/bin/sh\n# TEST FIXTURE (gcops integration tests): a clock that answers nonsense\n"
                    '[ "$*" = "+%s" ] && { echo soon; exit 0; }\nexec /bin/date "$@"\n')
    stub.chmod(0o755)


def test_plan_keeps_the_other_instances_results_when_one_listing_fails(host_factory, tmp_path):
    good, bad = host_factory("plgood"), host_factory("plbad")
    for i, h in enumerate((good, bad)):
        make_garbage(h, tmp_path / h.name, kept=1, deleted=1, seed=i)
    nonsense_clock(bad)
    before = {h.name: (h.config_file.read_bytes(), images.blob_digests_on_disk(h)) for h in (good, bad)}
    config = write_config(tmp_path / "gcops.toml", [instance_block(h.name, h) + RULE for h in (good, bad)],
                          state_dir=tmp_path / "state", client_key=good.client_key,
                          known_hosts=combined_known_hosts(tmp_path, (good, bad)))
    proc = run_gcops("--config", str(config), "plan", "--json")
    assert proc.returncode == 1, proc.stderr          # SPEC: an instance failed, nothing was touched
    assert "internal error" not in proc.stderr
    by_name = {i["name"]: i for i in json_doc(proc)["instances"]}
    assert by_name["plgood"]["error"] is None and by_name["plgood"]["eligible_blobs"] >= 1
    assert by_name["plgood"]["reclaimable_bytes"] > 0
    assert "tag listing" in by_name["plbad"]["error"] and by_name["plbad"]["reclaimable_bytes"] is None
    text = run_gcops("--config", str(config), "plan")
    assert text.returncode == 1 and "plgood" in text.stdout and "tag listing" in text.stdout
    dry = run_gcops("--config", str(config), "run", "--dry-run", "--json")   # SPEC: 1 when a run would be refused
    assert dry.returncode == 1 and "internal error" not in dry.stderr, dry.stderr
    described = {i["name"]: i for i in json_doc(dry)["instances"]}
    assert described["plgood"]["refused"] is None and any(s["step"] == "gc" for s in described["plgood"]["steps"])
    assert "tag listing" in described["plbad"]["refused"]
    for h in (good, bad):
        assert (h.config_file.read_bytes(), images.blob_digests_on_disk(h)) == before[h.name]
