"""Real images for test hosts: seeded OCI layouts built in Python, pushed/pulled with skopeo."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shlex
import shutil
import subprocess
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .netns import HarnessError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
LISTS = (OCI_INDEX, DOCKER_LIST)
PLATFORMS = {"amd64": {"architecture": "amd64", "os": "linux"},
             "arm64": {"architecture": "arm64", "os": "linux", "variant": "v8"},
             "arm": {"architecture": "arm", "os": "linux", "variant": "v7"},
             "ppc64le": {"architecture": "ppc64le", "os": "linux"},
             "s390x": {"architecture": "s390x", "os": "linux"}}
REGISTRY = "127.0.0.1:5000"


@dataclass
class Image:
    repo: str
    tag: str
    manifest_digest: str          # what the tag points to (an index for multi-arch pushes)
    blob_digests: set[str]        # configs and layers (of every platform), fetched via /v2/<repo>/blobs/
    size_bytes: int               # bytes of every blob the image stores: layers, configs and manifests
    media_type: str = ""
    manifest_digests: set[str] = field(default_factory=set)   # the top manifest and, for an index, its children
    child_digests: list[str] = field(default_factory=list)    # an index's manifests, in order

    @property
    def all_digests(self) -> set[str]:
        """Every digest stored under blobs/ for this image (manifests are blobs too)."""
        return self.blob_digests | self.manifest_digests


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put(layout: Path, data: bytes, media_type: str, **extra) -> dict:
    digest = _sha(data)
    path = layout / "blobs" / "sha256" / digest[7:]
    if not path.exists():
        path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _layer(layout: Path, seed: str, size: int) -> tuple[dict, str]:
    data = random.Random(seed).randbytes(size)            # incompressible, reproducible
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"gcops-test/{hashlib.sha256(seed.encode()).hexdigest()[:16]}.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return _put(layout, gzip.compress(raw, compresslevel=1, mtime=0), OCI_LAYER), _sha(raw)


def _init(dir: Path) -> Path:
    layout = Path(dir)
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    if not (layout / "index.json").exists():
        (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    return layout


def _tag(layout: Path, tag: str, desc: dict) -> None:
    index = json.loads((layout / "index.json").read_text())
    ref = "org.opencontainers.image.ref.name"
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(ref) != tag]
    index["manifests"].append({**desc, "annotations": {ref: tag}})
    (layout / "index.json").write_text(json.dumps(index, indent=1))


def _image_manifest(layout: Path, seeds: Sequence[str], layer_size: int, arch: str, label: str) -> dict:
    layers, diff_ids = zip(*(_layer(layout, s, layer_size) for s in seeds)) if seeds else ((), ())
    plat = PLATFORMS.get(arch, {"architecture": arch, "os": "linux"})
    config = _put(layout, _json({**plat, "created": "1970-01-01T00:00:00Z",
                                 "config": {"Labels": {"gcops.test": label}},
                                 "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}), OCI_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": list(layers)}
    return _put(layout, _json(manifest), OCI_MANIFEST)


def build_layout(dir: Path, tag: str, *, layers: int = 2, layer_size: int = 256 * 1024, seed: int,
                 arch: str = "amd64", layer_seeds: Sequence[int | str] | None = None) -> Path:
    """Add a single-platform image tagged `tag` to the OCI layout at dir (created if needed).

    Layer i's bytes come from (seed, arch, i), or from layer_seeds[i] if given (so
    images can share layers: same layer seed and size -> same blob)."""
    layout = _init(dir)
    seeds = ([f"layer:{s}:{layer_size}" for s in layer_seeds] if layer_seeds is not None
             else [f"{seed}:{arch}:{i}" for i in range(layers)])
    _tag(layout, tag, _image_manifest(layout, seeds, layer_size, arch, f"{seed}:{arch}"))
    return layout


def build_multiarch_layout(dir: Path, tag: str, *, arches: Sequence[str] = ("amd64", "arm64"), seed: int,
                           layer_size: int = 256 * 1024, layers: int = 1) -> Path:
    """Add an OCI image index tagged `tag`, with one image manifest per platform."""
    layout = _init(dir)
    children = []
    for arch in arches:
        desc = _image_manifest(layout, [f"{seed}:{arch}:{i}" for i in range(layers)], layer_size, arch,
                               f"{seed}:{arch}")
        children.append({**desc, "platform": PLATFORMS.get(arch, {"architecture": arch, "os": "linux"})})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    _tag(layout, tag, _put(layout, _json(index), OCI_INDEX))
    return layout


def registry_address(host) -> str:
    """Where skopeo reaches the host's registry: 127.0.0.1:5000 in a test host, a published port for a container."""
    return getattr(host, "registry_address", REGISTRY)


def _creds_args(flag: str, creds: tuple[str, str] | None) -> list[str]:
    """TEST ONLY: skopeo takes credentials on its command line."""
    return [flag, f"{creds[0]}:{creds[1]}"] if creds else []


def basic_auth(creds: tuple[str, str] | None) -> dict:
    import base64
    return {"Authorization": "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()} if creds else {}


def _skopeo(host, args: list[str], timeout: float = 120):
    return host.sh(" ".join(["skopeo", "--insecure-policy", *map(_q, args)]), check=False, timeout=timeout)


def _q(s: str) -> str:
    return shlex.quote(str(s))


def get_manifest(host, repo: str, ref: str, creds: tuple[str, str] | None = None) -> tuple[int, str, str, bytes]:
    """GET /v2/<repo>/manifests/<ref> accepting every type -> (status, digest, media type, body)."""
    status, headers, body = host.http("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT,
                                                                                    **basic_auth(creds)})
    return status, headers.get("Docker-Content-Digest", ""), headers.get("Content-Type", ""), body


def describe(host, repo: str, ref: str, tag: str = "", creds: tuple[str, str] | None = None) -> Image:
    """Read an image back from the registry: its digest, every blob, every manifest."""
    status, digest, ctype, body = get_manifest(host, repo, ref, creds)
    if status != 200:
        raise HarnessError(f"GET /v2/{repo}/manifests/{ref} answered {status}: {body[:300]!r}")
    if digest != _sha(body):
        raise HarnessError(f"{repo}:{ref}: Docker-Content-Digest {digest} != sha256 of body")
    doc = json.loads(body)
    mtype = doc.get("mediaType") or ctype
    img = Image(repo, tag or ref, digest, set(), len(body), mtype, {digest})
    manifests = [doc]
    if mtype in LISTS:
        for child in doc["manifests"]:
            st, d, _, b = get_manifest(host, repo, child["digest"], creds)
            if st != 200:
                raise HarnessError(f"{repo}@{child['digest']} (child of {ref}) answered {st}")
            img.child_digests.append(d)
            img.manifest_digests.add(d)
            img.size_bytes += len(b)
            manifests.append(json.loads(b))
        manifests = manifests[1:]
    for m in manifests:
        for desc in [m["config"], *m["layers"]]:
            if desc["digest"] not in img.blob_digests:
                img.blob_digests.add(desc["digest"])
                img.size_bytes += desc["size"]
    return img


def push(host, layout: Path, tag: str, repo: str, *, all_platforms: bool = False,
         dest_tag: str | None = None, format: str | None = None, creds: tuple[str, str] | None = None) -> Image:
    """skopeo copy oci:<layout>:<tag> docker://127.0.0.1:5000/<repo>:<dest_tag or tag> inside host.

    format: None keeps OCI; "v2s2" converts to Docker schema 2 (manifest list for an index)."""
    dest = dest_tag or tag
    args = ["copy", "--dest-tls-verify=false", "--retry-times", "0", *_creds_args("--dest-creds", creds)]
    if all_platforms:
        args.append("--all")
    if format:
        args += ["--format", format]
    p = _skopeo(host, args + [f"oci:{layout}:{tag}", f"docker://{registry_address(host)}/{repo}:{dest}"])
    if p.returncode != 0:
        raise HarnessError(f"skopeo push of {layout}:{tag} to {host.name} {repo}:{dest} failed:\n"
                           f"{p.stderr.decode(errors='replace')}")
    return describe(host, repo, dest, dest, creds)


def delete_tag(host, repo: str, tag: str, creds: tuple[str, str] | None = None) -> str:
    """Resolve tag -> digest and DELETE /v2/<repo>/manifests/<digest> (untags every tag on it)."""
    status, headers, body = host.http("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT,
                                                                                     **basic_auth(creds)})
    digest = headers.get("Docker-Content-Digest")
    if status != 200 or not digest:
        raise HarnessError(f"HEAD /v2/{repo}/manifests/{tag} answered {status}")
    status, _, body = host.http("DELETE", f"/v2/{repo}/manifests/{digest}", headers=basic_auth(creds))
    if status != 202:
        raise HarnessError(f"DELETE /v2/{repo}/manifests/{digest} answered {status}: {body[:300]!r}")
    return digest


def pulls(host, repo: str, ref: str, *, all_platforms: bool = False, creds: tuple[str, str] | None = None) -> bool:
    """skopeo copy from the registry into a scratch OCI layout (every blob fetched and verified)."""
    src = f"docker://{registry_address(host)}/{repo}{'@' if ref.startswith('sha256:') else ':'}{ref}"
    dest = Path(host.dir) / "tmp" / f"pull-{uuid.uuid4().hex[:8]}"
    args = (["copy", "--src-tls-verify=false", "--retry-times", "0", *_creds_args("--src-creds", creds)]
            + (["--all"] if all_platforms else []))
    try:
        p = _skopeo(host, args + [src, f"oci:{dest}:pulled"])
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    host.last_pull_error = "" if p.returncode == 0 else p.stderr.decode(errors="replace")
    return p.returncode == 0


def storage_du(host) -> int:
    out = subprocess.run(["du", "-sB1", str(host.storage_dir)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def blob_digests_on_disk(host) -> set[str]:
    """sha256:<hex> for every blobs/sha256/xx/<hex>/data in the storage (manifests included)."""
    root = Path(host.storage_dir) / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {f"sha256:{p.parent.name}" for p in root.glob("*/*/data")}
