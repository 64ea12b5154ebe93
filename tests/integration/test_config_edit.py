"""The real registry runs read-only from gcops' edit of a config whose read-only block is an alias of
the anchored uploadpurging block, with a tab before a comment (issue #10 item 8)."""
from __future__ import annotations

from tests.harness.gcops_cli import instance_block, write_config
from tests.harness.kinds import KINDS, registry_config
from tests.integration.conftest import all_pull, finish, make_garbage, slow_registry, spawn_until_gc, write_probe


def anchored_config() -> str:
    text = registry_config(KINDS["distribution"])
    text = text.replace("  # the storage gcops measures", "\t# the storage gcops measures (tab before #)")
    return text.replace("  cache:\n", "  maintenance:\n    uploadpurging: &off\n      enabled: false\n"
                                      "    readonly: *off\n  cache:\n")


def test_anchored_read_only_block_changes_only_the_flag(host_factory, tmp_path):
    h = host_factory("anchored", registry_config=anchored_config())
    garbage = make_garbage(h, tmp_path, kept=1, deleted=1)
    original = h.config_file.read_bytes()
    assert b"\t#" in original and b"*off" in original
    config = write_config(tmp_path / "gcops.toml",
                          [instance_block("anchored", h, vars={"registry": str(slow_registry(tmp_path, 2))})],
                          state_dir=tmp_path / "state", client_key=h.client_key, known_hosts=h.known_hosts)
    proc = spawn_until_gc(h, config, "run", "--json")
    during = h.config_file.read_bytes()
    probe = write_probe(h)
    code, doc, err = finish(proc)

    assert code == 0, err
    assert probe == 405 and h.registry_log_text().count("panic") == 0
    changed = [(a, b) for a, b in zip(original.splitlines(), during.splitlines()) if a != b]
    assert changed == [(b"    readonly: *off", b"    readonly: {<<: *off, enabled: true}")]
    assert h.config_file.read_bytes() == original and write_probe(h) == 400
    assert all_pull(h, garbage.kept)
