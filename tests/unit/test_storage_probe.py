"""The storage measurement scripts (measure.sh, blob_bytes.sh) under dash and BusyBox sh,
with GNU tools and with BusyBox applets, against GNU du/find on a real tree."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gcops.storage.filesystem import (MeasurementError, blob_paths_input, blobs_size_command, measure_command,
                                    parse_measurement)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "measure"
DASH, BUSYBOX = shutil.which("dash"), shutil.which("busybox")
APPLETS = ("sh", "find", "stat", "awk", "xargs", "cat", "df", "du", "sort", "sed", "head", "tail", "tr", "wc")
SHELLS = [pytest.param([DASH], id="dash", marks=pytest.mark.skipif(not DASH, reason="dash not installed")),
          pytest.param([BUSYBOX, "sh"], id="busybox-sh",
                       marks=pytest.mark.skipif(not BUSYBOX, reason="busybox not installed"))]
TOOLS = ["gnu", pytest.param("busybox", marks=pytest.mark.skipif(not BUSYBOX, reason="busybox not installed"))]


@pytest.fixture(scope="module")
def applets(tmp_path_factory) -> Path:
    """A directory of BusyBox applet symlinks: used as the whole PATH, no GNU tool can leak in."""
    d = tmp_path_factory.mktemp("busybox-bin")
    for name in APPLETS:
        (d / name).symlink_to(BUSYBOX)
    return d


def tree(root: Path) -> Path:
    for i, size in enumerate([0, 1, 4095, 4097, 100_000, 3 * 1024 * 1024]):
        d = root / "docker/registry/v2/blobs/sha256" / f"{i:02x}" / (f"{i:02x}" + "0" * 62)
        d.mkdir(parents=True)
        (d / "data").write_bytes(os.urandom(size))
    layers = root / "docker/registry/v2/repositories/team/app/_layers/sha256/00aa"
    layers.mkdir(parents=True)
    (layers / "link").write_text("sha256:00aa")
    (root / "docker/registry/v2/repositories/team/app/_layers/data").write_text("not a blob")
    (root / "docker/registry/v2/blobs/sha256/00/notes").write_text("not a blob either")
    os.symlink("data", root / "docker/registry/v2/blobs/sha256/01/link-to-data")
    return root


def run_script(shell, tools, applets, command: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    """`command` (a /bin/sh -c line) with /bin/sh swapped for `shell`, PATH = GNU or BusyBox applets only."""
    assert command.startswith("/bin/sh ")
    path = str(applets) if tools == "busybox" else os.environ["PATH"]
    return subprocess.run(" ".join([*shell]) + command[len("/bin/sh"):], shell=True, input=input,
                          capture_output=True, env={"PATH": path, "LANG": "C"})


def gnu_du(*paths) -> int:
    out = subprocess.run(["du", "-scB1", *map(str, paths)], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def fs_used() -> int:
    st = os.statvfs("/tmp")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.mark.parametrize("name", ["gnu.out", "busybox.out"])
def test_parse_recorded_output(name):
    snap = parse_measurement((FIXTURES / name).read_text())
    assert (snap.storage_bytes, snap.blobs) == (3375104, 6)
    assert snap.fs_used_bytes > 0


@pytest.mark.parametrize("text", ["", "x\n", "fs_used_bytes=1\ntree_bytes=2\n", "fs_used_bytes=1\ntree_bytes=x\nblobs=1",
                                  "12\n372736 3\n", "fs_used_bytes=1\ntree_bytes=-2\nblobs=1\n"])
def test_parse_rejects_garbage(text):
    with pytest.raises(MeasurementError):
        parse_measurement(text)


@pytest.mark.parametrize("tools", TOOLS)
@pytest.mark.parametrize("shell", SHELLS)
def test_measure_matches_gnu_du(shell, tools, applets, tmp_path):
    root = tree(tmp_path / "st")
    low = fs_used()
    out = run_script(shell, tools, applets, measure_command(str(root)))
    high = fs_used()
    assert out.returncode == 0, out.stderr
    snap = parse_measurement(out.stdout.decode())
    assert snap.storage_bytes == gnu_du(root)
    assert snap.blobs == 6
    assert low - 2**26 <= snap.fs_used_bytes <= high + 2**26   # /tmp is shared with other test runs


@pytest.mark.parametrize("tools", TOOLS)
@pytest.mark.parametrize("shell", SHELLS)
def test_blob_bytes_matches_gnu_du(shell, tools, applets, tmp_path):
    root = tree(tmp_path / "st")
    digests = [f"sha256:{i:02x}" + "0" * 62 for i in (1, 3, 5)]
    gone = "sha256:ee" + "0" * 62                        # already deleted: counts 0
    out = run_script(shell, tools, applets, blobs_size_command(str(root)), blob_paths_input(digests + [gone]))
    assert out.returncode == 0, out.stderr
    dirs = [root / "docker/registry/v2/blobs/sha256" / d[7:9] / d[7:] for d in digests]
    assert int(out.stdout) == gnu_du(*dirs) > 3 * 1024 * 1024
    empty = run_script(shell, tools, applets, blobs_size_command(str(root)), b"")
    assert (empty.returncode, empty.stdout) == (0, b"0\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_blob_bytes_refuses_a_path_that_is_not_a_blob(shell, applets, tmp_path):
    root = tree(tmp_path / "st")
    out = run_script(shell, "gnu", applets, blobs_size_command(str(root)), b"docker/registry/v2/repositories\n")
    assert out.returncode != 0 and out.stdout == b""
    assert b"not a blob path" in out.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_missing_tool_fails_loudly(shell, tmp_path, applets):
    root = tree(tmp_path / "st")
    nostat = tmp_path / "bin"
    nostat.mkdir()
    for name in ("sh", "find", "awk", "xargs"):
        (nostat / name).symlink_to(applets / name)
    out = subprocess.run(" ".join(shell) + measure_command(str(root))[len("/bin/sh"):], shell=True,
                         capture_output=True, env={"PATH": str(nostat)})
    assert out.returncode != 0 and b"tree_bytes" not in out.stdout
    assert b"'stat' not found" in out.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_unparsable_stat_output_fails_loudly(shell, tmp_path, applets):
    """A stat whose -c output is not what we asked for (an odd build) is an error, never a 0."""
    root = tree(tmp_path / "st")
    odd = tmp_path / "bin"
    odd.mkdir()
    for name in ("sh", "find", "awk", "xargs"):
        (odd / name).symlink_to(applets / name)
    (odd / "stat").write_text('#!/bin/sh\ncase "$1" in -f) echo "4096 100 50";; *) echo "?";; esac\n')
    (odd / "stat").chmod(0o755)
    out = subprocess.run(" ".join(shell) + measure_command(str(root))[len("/bin/sh"):], shell=True,
                         capture_output=True, env={"PATH": str(odd)})
    assert out.returncode != 0 and b"tree_bytes" not in out.stdout
    assert b"unexpected line" in out.stderr
    with pytest.raises(MeasurementError):
        parse_measurement(out.stdout.decode())


def test_missing_root_fails_loudly(tmp_path):
    out = subprocess.run(measure_command(str(tmp_path / "nope")), shell=True, capture_output=True)
    assert out.returncode != 0 and out.stdout == b"" and b"cannot enter" in out.stderr


def test_measure_quotes_the_root(tmp_path):
    evil = tmp_path / "a b;$(touch pwned)"
    evil.mkdir()
    subprocess.run(["sh", "-c", measure_command(str(evil))], cwd=tmp_path, check=True, capture_output=True)
    assert not (tmp_path / "pwned").exists()


def test_blob_paths_input():
    assert blob_paths_input(["sha256:abcd"]) == b"docker/registry/v2/blobs/sha256/ab/abcd\n"
    with pytest.raises(MeasurementError):
        blob_paths_input(["sha256:../../etc"])


def test_host_scripts_pass_shellcheck():
    scripts = sorted((Path(__file__).resolve().parents[2] / "gcops" / "hostside" / "sh").glob("*.sh"))
    if not shutil.which("shellcheck"):
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("CI=true but shellcheck is missing")
        pytest.skip("shellcheck not installed")
    assert len(scripts) >= 2
    out = subprocess.run(["shellcheck", "-s", "sh", "-S", "warning", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("tools", TOOLS)
@pytest.mark.parametrize("shell", SHELLS)
def test_link_bytes_matches_gnu_du(shell, tools, applets, tmp_path):
    from gcops.registry.untagged import delete_input, links_size_command

    root = tmp_path / "st"
    v2 = root / "docker/registry/v2/repositories"
    hexes = ["aa" * 32, "bb" * 32]
    paths = []
    for hexd in hexes:
        rev = v2 / "team/app/_manifests/revisions/sha256" / hexd
        rev.mkdir(parents=True)
        (rev / "link").write_text(f"sha256:{hexd}")
        idx = v2 / "team/app/_manifests/tags/t-{}/index/sha256".format(hexd[:2]) / hexd
        idx.mkdir(parents=True)
        (idx / "link").write_text(f"sha256:{hexd}")
        paths += [rev, idx]
    command = links_size_command(str(root))
    out = run_script(shell, tools, applets, command, delete_input({"team/app": set(hexes), "team/gone": {"cc" * 32}}))
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == gnu_du(*paths) > 0
    bad = run_script(shell, tools, applets, command, b"../../etc\t" + b"aa" * 32 + b"\n")
    assert bad.returncode != 0 and bad.stdout == b""
