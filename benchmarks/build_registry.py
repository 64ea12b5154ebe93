"""Write a large registry straight in distribution's filesystem layout, with real garbage.

Layout (what Debian's docker-registry 2.8.2 reads and what its GC walks):

    docker/registry/v2/blobs/sha256/<xx>/<hex>/data
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link                 configs and layers
    docker/registry/v2/repositories/<name>/_manifests/revisions/sha256/<hex>/link    manifests
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
    docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link

Every image is real: a gzip'd tar layer whose config lists its diff_id, a config, and a Docker
schema2 or OCI manifest; every digest is the sha256 of the stored bytes. Each repository has
`kept + deleted` images sharing one global base layer (one of BASES) and one repository base
layer; `layers` further layers are the image's own. A *deleted* image is what DELETE
/v2/<name>/manifests/<digest> leaves behind: its blobs and _layers links stay, its revision
link and tags go, so its manifest, config and own layers are garbage for `garbage-collect`.

    python3 benchmarks/build_registry.py /tmp/x --repos 1000     # prints the summary as JSON
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BASES = 16                      # global base layers, shared by every repository
V2 = "docker/registry/v2"


@dataclass
class BuiltRegistry:
    root: str
    repos: int
    blobs: int = 0                  # blob data files written
    garbage_blobs: int = 0          # blobs no remaining manifest references
    blob_bytes: int = 0             # sum of blob sizes
    garbage_bytes: int = 0
    tags_kept: int = 0
    tags_deleted: int = 0
    seconds: float = 0.0
    kept: list = field(default_factory=list)      # samples: [repo, tag, manifest digest, media type]
    deleted: list = field(default_factory=list)   # samples: [repo, manifest digest]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _tar_gz(name: str, payload: bytes) -> tuple[bytes, str]:
    """A one-file ustar archive, gzip'd; returns (compressed bytes, sha256 of the tar = diff_id)."""
    header = bytearray(512)
    fields = [(0, name.encode()[:100]), (100, b"0000644\0"), (108, b"0000000\0"), (116, b"0000000\0"),
              (124, b"%011o\0" % len(payload)), (136, b"00000000000\0"), (156, b"0"), (257, b"ustar\x0000")]
    for off, val in fields:
        header[off:off + len(val)] = val
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    pad = (-len(payload)) % 512
    tar = bytes(header) + payload + b"\0" * pad + b"\0" * 1024
    return gzip.compress(tar, compresslevel=1, mtime=0), _sha(tar)


class _Writer:
    """Writes files with os.open/os.write; remembers which blobs and directories exist."""

    def __init__(self, root: Path):
        self.v2 = str(root / V2)
        self.made: set[str] = set()
        self.blobs: dict[str, int] = {}      # hex -> size
        for xx in range(256):
            os.makedirs(f"{self.v2}/blobs/sha256/{xx:02x}", exist_ok=True)
        os.makedirs(f"{self.v2}/repositories", exist_ok=True)

    def _mkdirs(self, path: str) -> None:
        if path in self.made:
            return
        parent = path.rsplit("/", 1)[0]
        if parent not in self.made and not os.path.isdir(parent):
            self._mkdirs(parent)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        self.made.add(path)

    def file(self, path: str, data: bytes) -> None:
        self._mkdirs(path.rsplit("/", 1)[0])
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def blob(self, data: bytes) -> dict:
        hexd = _sha(data)
        if hexd not in self.blobs:
            d = f"{self.v2}/blobs/sha256/{hexd[:2]}/{hexd}"
            os.mkdir(d, 0o755)
            self.made.add(d)
            self.file(f"{d}/data", data)
            self.blobs[hexd] = len(data)
        return {"digest": f"sha256:{hexd}", "size": len(data)}

    def link(self, repo: str, kind: str, digest: str) -> None:
        hexd = digest[7:]
        base = f"{self.v2}/repositories/{repo}"
        sub = {"layer": f"_layers/sha256/{hexd}", "revision": f"_manifests/revisions/sha256/{hexd}"}[kind]
        self.file(f"{base}/{sub}/link", digest.encode())

    def tag(self, repo: str, tag: str, digest: str) -> None:
        base = f"{self.v2}/repositories/{repo}/_manifests/tags/{tag}"
        self.file(f"{base}/current/link", digest.encode())
        self.file(f"{base}/index/sha256/{digest[7:]}/link", digest.encode())


def _layer(w: _Writer, rnd: random.Random, label: str, oci: bool) -> tuple[dict, str]:
    payload = rnd.randbytes(rnd.randint(200, 2500))
    gz, diff_id = _tar_gz(f"bench/{label}.bin", payload)
    return {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, **w.blob(gz)}, f"sha256:{diff_id}"


def build(root: Path, *, repos: int = 1000, kept: int = 3, deleted: int = 1, layers: int = 5,
          seed: int = 0, samples: int = 8) -> BuiltRegistry:
    """Write the registry under root (the filesystem driver's rootdirectory); return what was written."""
    t0 = time.monotonic()
    root = Path(root)
    w = _Writer(root)
    out = BuiltRegistry(root=str(root), repos=repos)
    live: set[str] = set()
    bases = [_layer(w, random.Random(f"{seed}:base:{b}"), f"base{b}", False) for b in range(BASES)]
    for r in range(repos):
        repo = f"group{r % 40:02d}/service-{r:04d}"
        oci = r % 2 == 1                       # half Docker schema2, half OCI
        rnd = random.Random(f"{seed}:repo:{r}")
        repo_base = _layer(w, rnd, f"{repo}-base", oci)
        for i in range(kept + deleted):
            is_deleted = i < deleted           # the oldest tags were deleted
            tag = f"v{i + 1}"
            own = [_layer(w, rnd, f"{repo}-{tag}-{j}", oci) for j in range(layers)]
            base_desc, base_diff = bases[r % BASES]     # same blob; media type of this manifest's kind
            descs = [({**base_desc, "mediaType": OCI_LAYER if oci else DOCKER_LAYER}, base_diff), repo_base, *own]
            config = {"architecture": "amd64", "os": "linux", "created": f"2024-01-{1 + i % 28:02d}T00:00:00Z",
                      "config": {"Labels": {"bench.repo": repo, "bench.tag": tag}},
                      "rootfs": {"type": "layers", "diff_ids": [d for _, d in descs]}}
            cdesc = {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, **w.blob(_json(config))}
            manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
                        "config": cdesc, "layers": [d for d, _ in descs]}
            mdesc = w.blob(_json(manifest))
            for desc in [cdesc, *(d for d, _ in descs)]:
                w.link(repo, "layer", desc["digest"])
            refs = [mdesc["digest"], cdesc["digest"], *(d["digest"] for d, _ in descs)]
            if is_deleted:
                out.tags_deleted += 1
                if len(out.deleted) < samples and r % 97 == 0:
                    out.deleted.append([repo, mdesc["digest"]])
                continue
            live.update(refs)
            w.link(repo, "revision", mdesc["digest"])
            w.tag(repo, tag, mdesc["digest"])
            out.tags_kept += 1
            if len(out.kept) < samples and r % 97 == 0 and i == kept + deleted - 1:
                out.kept.append([repo, tag, mdesc["digest"], manifest["mediaType"]])
    out.blobs = len(w.blobs)
    out.blob_bytes = sum(w.blobs.values())
    garbage = [h for h in w.blobs if f"sha256:{h}" not in live]
    out.garbage_blobs = len(garbage)
    out.garbage_bytes = sum(w.blobs[h] for h in garbage)
    out.seconds = time.monotonic() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--repos", type=int, default=1000)
    ap.add_argument("--kept", type=int, default=3)
    ap.add_argument("--deleted", type=int, default=1)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(json.dumps(asdict(build(Path(a.root), repos=a.repos, kept=a.kept, deleted=a.deleted,
                                  layers=a.layers, seed=a.seed)), indent=1))


if __name__ == "__main__":
    main()
