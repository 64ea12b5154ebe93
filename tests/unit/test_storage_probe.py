import subprocess
from pathlib import Path

import pytest

from gcops.registry.storage import MeasurementError, blob_paths_input, measure_command, parse_measurement

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "measure"


def test_parse_recorded_output():
    snap = parse_measurement((FIXTURES / "small.out").read_text())
    assert (snap.fs_used_bytes, snap.storage_bytes, snap.blobs) == (23310544896, 372736, 3)


@pytest.mark.parametrize("text", ["", "x\n", "1\n2\n", "12\nfoo bar\n"])
def test_parse_rejects_garbage(text):
    with pytest.raises(MeasurementError):
        parse_measurement(text)


def test_measure_matches_du_on_a_real_tree(tmp_path):
    root = tmp_path / "st"
    for i, size in enumerate([0, 1, 4095, 4097, 100_000]):
        d = root / "docker/registry/v2/blobs/sha256" / f"{i:02x}" / (f"{i:02x}" + "0" * 62)
        d.mkdir(parents=True)
        (d / "data").write_bytes(b"x" * size)
    (root / "docker/registry/v2/repositories/r/_layers").mkdir(parents=True)
    (root / "docker/registry/v2/repositories/r/_layers/data").write_text("not a blob")
    out = subprocess.run(["sh", "-c", measure_command(str(root))], capture_output=True, text=True, check=True).stdout
    snap = parse_measurement(out)
    du = int(subprocess.run(["du", "-sB1", str(root)], capture_output=True, text=True, check=True).stdout.split()[0])
    assert snap.storage_bytes == du
    assert snap.blobs == 5


def test_measure_quotes_the_root(tmp_path):
    evil = tmp_path / "a b;$(touch pwned)"
    evil.mkdir()
    subprocess.run(["sh", "-c", measure_command(str(evil))], cwd=tmp_path, check=True, capture_output=True)
    assert not (tmp_path / "pwned").exists()


def test_blob_paths_input():
    assert blob_paths_input(["sha256:abcd"]) == b"docker/registry/v2/blobs/sha256/ab/abcd\0"
