"""The built-in demo: a throwaway local registry with real garbage, reclaimed by `gcops run`.

It builds one test host (a network + mount namespace with the real
docker-registry, exactly the standard Debian paths), pushes real images with
skopeo, deletes some tags, then runs `gcops run` with `host = "local"` inside
that host and prints `gcops report`. Everything is removed at the end.
Needs root (namespaces); scripts/demo.sh installs what it needs first.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.harness import hosts, images  # noqa: E402
from tests.harness.gcops_cli import gcops_argv, instance_block, write_config  # noqa: E402


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="gcops-demo-"))
    hosts.cleanup_stale()
    key = hosts.make_client_key(base / "key")
    host = hosts.start_host("demo", base_dir=base / "hosts", client_key=key)
    try:
        print("demo: pushing 6 images (4 MiB each) with skopeo, then deleting 4 of their tags ...")
        for i in range(6):
            layout = images.build_layout(base / f"oci{i}", f"v{i}", seed=i, layer_size=2 * 1024 * 1024)
            images.push(host, layout, f"v{i}", "demo/app")
        for i in range(4):
            images.delete_tag(host, "demo/app", f"v{i}")
        config = write_config(base / "gcops.toml", [instance_block("demo-registry", "local")],
                              state_dir=base / "state")
        print(f"demo: config {config}:\n{config.read_text()}")
        env = {**host.env(), "PYTHONPATH": str(REPO)}
        for args in (["check"], ["run"], ["report"]):
            print(f"\n$ gcops --config {config} {' '.join(args)}", flush=True)
            proc = subprocess.run(host.nsenter_argv() + gcops_argv("--config", str(config), *args), env=env)
            if proc.returncode != 0:
                print(f"demo: gcops {args[0]} exited {proc.returncode}", file=sys.stderr)
                return proc.returncode
        ok = all(images.pulls(host, "demo/app", f"v{i}") for i in (4, 5))
        print(f"\ndemo: the remaining tags v4 and v5 still pull with all their blobs: {ok}")
        return 0 if ok else 1
    finally:
        host.close()
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    sys.exit(main())
