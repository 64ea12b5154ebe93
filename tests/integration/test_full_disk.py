"""The config directory on a nearly full filesystem: every attempt refuses changing nothing, or completes.

The host scripts themselves are driven at every fill level from 0 to a dozen free blocks (ext4 with
inline data, 1 KiB blocks; tmpfs, 4 KiB pages), then `gcops run` is refused by its preflight with
nothing touched. Invariants after each attempt: the config holds its original bytes, the registry
answers and accepts writes, no marker or lock is left, and the next action (`gcops recover`) has
nothing to do.
"""
from __future__ import annotations

import hashlib
import subprocess

import pytest

from gcops import hostside
from gcops.registry.config_file import with_read_only
from tests.harness.gcops_cli import json_doc, run_gcops
from tests.integration.conftest import make_garbage, write_probe
from tests.integration.test_faults import config_for

CFG = "/etc/docker/registry/config.yml"
LEVELS = [*range(0, 13), 14, 16, 17, 18, 19, 20, 24, 32]   # and the boundary where the record just fits


def mount_small_fs(h, tmp_path, kind: str) -> int:
    """Put the host's config dir on a small filesystem of `kind`; gives its block size."""
    original = h.sh(f"cat {CFG}").stdout
    if kind == "ext4":
        img = tmp_path / "config.img"
        subprocess.run(["truncate", "-s", "1M", str(img)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "inline_data", "-b", "1024", str(img)],
                       check=True, capture_output=True)
        h.sh(f"mount -o loop {img} /etc/docker/registry")
        block = 1024
    else:
        h.sh("mount -t tmpfs -o size=1m,mode=0755 gcops-small /etc/docker/registry")
        block = 4096
    h.sh(f"cat > {CFG}", input=original)
    return block


def fill(h, free_blocks: int, block: int) -> int:
    """Leave about `free_blocks` blocks free on the config's filesystem; gives the free bytes left."""
    h.sh("rm -f /etc/docker/registry/filler; sync")
    for _ in range(4):
        avail = int(h.sh("df -P -B1 /etc/docker/registry | awk 'NR==2 {print $4}'").stdout)
        extra = avail - free_blocks * block
        if extra <= 0:
            return avail
        h.sh(f"head -c {extra} /dev/zero >> /etc/docker/registry/filler 2>/dev/null; sync", check=False)
    return int(h.sh("df -P -B1 /etc/docker/registry | awk 'NR==2 {print $4}'").stdout)


def plan(run_id: str) -> hostside.NodePlan:
    return hostside.NodePlan(run_id=run_id, owner=f"test run {run_id}", config_path=CFG,
                             registry_url="http://127.0.0.1:5000", mode="readonly",
                             restart="systemctl restart docker-registry", stop="systemctl stop docker-registry",
                             start="systemctl start docker-registry", gc=":", max_window=600,
                             already_read_only=False)


def assert_as_it_was(h, original: bytes) -> None:
    assert h.sh(f"cat {CFG}").stdout == original
    assert write_probe(h) == 400                       # answering, and writable
    left = h.sh("ls -A /etc/docker/registry/.gcops 2>/dev/null || true").stdout.decode().split()
    assert "marker" not in left and "lock" not in left, left
    assert not h.sh("ls /etc/docker/registry | grep -E 'gcops-(new|tmp|restore)' || true").stdout.strip()


@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_every_fill_level_refuses_or_completes(kind, host_factory, tmp_path):
    h = host_factory(f"full-{kind}")
    make_garbage(h, tmp_path, kept=1, deleted=1)
    block = mount_small_fs(h, tmp_path, kind)
    original = h.sh(f"cat {CFG}").stdout
    new = with_read_only(original)
    outcomes = {}
    for level in [*LEVELS, 400]:
        h.sh("rm -rf /etc/docker/registry/.gcops")
        fill(h, level, block)
        p = plan(f"20261129T000000Z-{level:04x}")
        enter = h.sh(hostside.enter_command(p, hashlib.sha256(original).hexdigest(), True,
                                            hashlib.sha256(new).hexdigest()), input=new, check=False, timeout=180)
        if enter.returncode == hostside.EXIT_REFUSED:
            assert b"refused=" in enter.stdout
            outcomes[level] = "refused"
        else:
            leave = h.sh(hostside.leave_command(p), check=False, timeout=180)
            assert leave.returncode == 0 and b"restored=yes" in leave.stdout, (level, enter.stdout, leave.stdout)
            outcomes[level] = "entered" if enter.returncode == 0 else f"failed {enter.returncode}, restored"
        assert_as_it_was(h, original)
    assert outcomes[0] == "refused" and outcomes[400] == "entered", outcomes
    # gcops itself refuses up front, naming the problem, and the next action finds nothing to do
    h.sh("rm -rf /etc/docker/registry/.gcops")
    fill(h, 4, block)
    config = config_for(tmp_path, h)
    proc = run_gcops("--config", str(config), "run", "--json")
    assert proc.returncode == 1, proc.stderr
    assert "free" in json_doc(proc)["instances"][0]["error"]
    assert_as_it_was(h, original)
    recover = run_gcops("--config", str(config), "recover", "--json")
    assert recover.returncode == 0 and json_doc(recover)["instances"][0]["nodes"][0]["action"] == "none"
    h.sh("rm -f /etc/docker/registry/filler; umount /etc/docker/registry", check=False)
