"""The host scripts of read-only verification and the Redis purge: shellcheck-clean, same answers under dash and busybox."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from gcops.hostside import scripts

NAMES = ("http_request", "blobs_missing")
SHELLS = [["dash", "-c"], ["busybox", "sh", "-c"]]


@pytest.mark.parametrize("name", NAMES)
def test_shellcheck_clean(name, tmp_path):
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    path = tmp_path / f"{name}.sh"
    path.write_text(scripts.text(name))
    p = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", str(path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_blobs_missing_names_only_digests_without_data(shell, tmp_path):
    if not shutil.which(shell[0]):
        pytest.skip(f"{shell[0]} not installed")
    present, absent = "a1" * 32, "b2" * 32
    data = tmp_path / "docker/registry/v2/blobs/sha256" / present[:2] / present / "data"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"x")
    stdin = f"sha256:{present}\nsha256:{absent}\nnot-a-digest\nsha256:../../etc\n\n"
    p = subprocess.run([*shell, scripts.text("blobs_missing"), "x", str(tmp_path)], input=stdin,
                       capture_output=True, text=True, check=True)
    assert p.stdout.splitlines() == [f"missing=sha256:{absent}"]


@pytest.mark.parametrize("shell", SHELLS)
def test_blobs_missing_refuses_a_root_without_a_registry(shell, tmp_path):
    if not shutil.which(shell[0]):
        pytest.skip(f"{shell[0]} not installed")
    p = subprocess.run([*shell, scripts.text("blobs_missing"), "x", str(tmp_path / "nothing")], input="",
                       capture_output=True, text=True)
    assert p.returncode == 10 and p.stdout == ""
