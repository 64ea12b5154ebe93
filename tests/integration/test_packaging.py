"""gcops as users install it: a wheel built from a clean copy, in a fresh venv, outside the checkout.

The venv gets gcops only from the wheel (pip --no-deps --no-index, no network); its dependencies
come from the test interpreter's site-packages through a .pth line, which does not carry the
checkout's editable install along (a .pth line adds a path; it does not run that path's .pth files).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

from tests.harness.gcops_cli import REPO, instance_block, write_config
from tests.integration.conftest import make_garbage

_BUILD = "from setuptools import build_meta as b; import sys; print(getattr(b, sys.argv[1])(sys.argv[2]))"


def clean_copy(dest: Path) -> Path:
    """The files git tracks (or, outside git, the tree without caches and venvs)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode == 0 and listed.stdout:
        for name in listed.stdout.decode().split("\0"):
            src = REPO / name
            if name and (src.is_file() or src.is_symlink()):
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name, follow_symlinks=False)
    else:
        shutil.copytree(REPO, dest, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist"))
    return dest


def test_wheel_in_a_fresh_venv_runs_against_a_test_host(host_factory, tmp_path):
    src = clean_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    for hook in ("build_sdist", "build_wheel"):
        build = subprocess.run([sys.executable, "-c", _BUILD, hook, str(dist)], cwd=src, capture_output=True,
                               text=True, timeout=120)
        assert build.returncode == 0, build.stderr
        log = build.stdout + build.stderr
        assert "absent from the" not in log and "would be ignored" not in log, log
    wheel = next(dist.glob("gcops-*.whl"))
    sdist = next(dist.glob("gcops-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"README.md", "config.sample.toml", "distribution.toml", "omnibus.toml"} <= names
    with zipfile.ZipFile(wheel) as whl:
        assert {"gcops/builtin_playbooks/distribution.toml", "gcops/builtin_playbooks/omnibus.toml"} <= set(
            whl.namelist())

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    purelib = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()"
                                   "['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "gcops-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                              "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True,
                             timeout=120)
    assert install.returncode == 0, install.stderr

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("GCOPS_")}

    def gcops(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "gcops"), *args], cwd=outside, env=env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)

    version = gcops("--version")
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr
    where = subprocess.run([venv / "bin" / "python", "-c", "import gcops; print(gcops.__file__)"], cwd=outside,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(purelib)), where   # the wheel's copy, not the checkout

    h = host_factory("wheel")
    make_garbage(h, tmp_path)
    config = write_config(outside / "gcops.toml", [instance_block("reg", h)], state_dir=tmp_path / "state",
                          client_key=h.client_key, known_hosts=h.known_hosts)
    assert gcops("config", "validate", "--config", str(config)).returncode == 0  # built-in playbook found
    run = gcops("run", "--json", "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert '"reclaimed_bytes": 0,' not in run.stdout and '"status": "ok"' in run.stdout
