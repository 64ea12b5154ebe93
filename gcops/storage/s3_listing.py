"""Sum the objects under a registry's root in a bucket: parallel, exact, constant memory.

A sequential ListObjectsV2 walk pays one round trip per 1000 keys, one after
the other. Here the key space is cut into disjoint parts that are listed at
once by `concurrency` threads:

* every level of the layout (`<root>/`, `docker/`, `docker/registry/`,
  `docker/registry/v2/`, `.../blobs/`, `.../blobs/sha256/`, `.../repositories/`)
  is read at once with Delimiter="/" (a missing level answers empty): each
  answer gives the objects directly at that level (counted there) and its
  sub-"directories" (CommonPrefixes), an exact partition of the level;
* the blob directories under `blobs/sha256/` (256 two-hex dirs) and the
  repositories under `repositories/` are grouped into contiguous runs, one
  task each, listed with the longest common prefix of the run (so a group of
  `sha256/a0/`..`sha256/af/` is simply Prefix=".../sha256/a", which a server
  answers without reading past it) plus StartAfter and a stop key; very few
  top-level repository names are read one level deeper first;
* any other sub-directory is one task, listed whole.

Fewer, fuller requests beat many small ones: a server's cost per request
grows with the bucket (moto walks every key of the bucket on each call).

Each task keeps two counters, never a key list, so memory does not grow with
the bucket. Throttling (SlowDown, 503) is retried with backoff by botocore's
standard retry mode; `requests` counts list calls made.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from gcops.errors import HostError

BLOB_DIRS = "docker/registry/v2/blobs/sha256/"
REPOSITORIES = "docker/registry/v2/repositories/"
DESCEND = ("", "docker/", "docker/registry/", "docker/registry/v2/", "docker/registry/v2/blobs/")
GROUPED = (BLOB_DIRS, REPOSITORIES)


class S3Error(HostError):
    """The bucket could not be listed (after retries)."""


@dataclass
class Listing:
    total_bytes: int = 0
    objects: int = 0
    blob_bytes: int = 0        # blob data objects: <root>/docker/registry/v2/blobs/sha256/xx/<hex>/data
    blobs: int = 0
    selected_bytes: int = 0    # blobs whose digest was asked for (plan's eligible blobs)
    selected: int = 0
    requests: int = 0


@dataclass(frozen=True)
class _Task:
    prefix: str                 # Prefix= of the listing
    delimiter: bool = False     # a level read with Delimiter="/"
    split: bool = False         # a level whose sub-directories are grouped (or descended when few)
    budget: int = 0             # split: about how many tasks its sub-directories become
    parent: str = ""            # grouped: the level the group belongs to
    first: str = ""             # grouped: first and last CommonPrefix of the group (inclusive)
    last: str = ""


def _is_blob_data(key: str, prefix: str) -> bool:
    rest = key[len(prefix):]
    if not rest.startswith(BLOB_DIRS):
        return False
    parts = rest[len(BLOB_DIRS):].split("/")
    return len(parts) == 3 and parts[2] == "data" and len(parts[0]) == 2 and parts[1].startswith(parts[0])


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _groups(dirs: list[str], count: int) -> list[tuple[str, str]]:
    """Contiguous runs of sorted `dirs`, about `count` of them; blob dirs cut at a first-hex-char change."""
    if not dirs:
        return []
    size = max(1, -(-len(dirs) // count))
    runs, start = [], 0
    while start < len(dirs):
        end = min(len(dirs), start + size)
        runs.append((dirs[start], dirs[end - 1]))
        start = end
    return runs


class _Walk:
    def __init__(self, client, bucket: str, root: str, concurrency: int,
                 on_progress: Callable[[int, int], None] | None, select: frozenset[str] = frozenset()):
        self.client, self.bucket, self.root = client, bucket, root
        self.select = select
        self.concurrency = max(1, concurrency)
        self.on_progress = on_progress
        self.lock = threading.Lock()
        self.total = Listing()

    def _list(self, **kwargs) -> dict:
        from botocore.exceptions import BotoCoreError, ClientError

        from gcops.storage.s3 import describe_error

        with self.lock:
            self.total.requests += 1
        try:
            return self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1000, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise S3Error(f"listing s3://{self.bucket}/{kwargs.get('Prefix', '')}: {describe_error(exc)}") from exc

    def _add(self, part: Listing) -> None:
        with self.lock:
            t = self.total
            t.total_bytes += part.total_bytes
            t.objects += part.objects
            t.blob_bytes += part.blob_bytes
            t.blobs += part.blobs
            t.selected_bytes += part.selected_bytes
            t.selected += part.selected
            objects, size = t.objects, t.total_bytes
        if self.on_progress is not None:
            self.on_progress(objects, size)

    def _count(self, part: Listing, key: str, size: int) -> None:
        part.objects += 1
        part.total_bytes += size
        if _is_blob_data(key, self.root):
            part.blobs += 1
            part.blob_bytes += size
            if self.select and key.rsplit("/", 2)[-2] in self.select:
                part.selected += 1
                part.selected_bytes += size

    def run_task(self, task: _Task) -> list[_Task]:
        """List one task to its end; give the tasks it discovered (delimiter levels only)."""
        if task.delimiter:
            return self._level(task)
        part, token = Listing(), None
        start_after = task.first[:-1] if task.first else None   # just before every key under `first`
        while True:
            kwargs = {"Prefix": task.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after and start_after > task.prefix:
                kwargs["StartAfter"] = start_after
            page = self._list(**kwargs)
            done = False
            for obj in page.get("Contents", ()):
                key = obj["Key"]
                if task.first:
                    rest = key[len(task.parent):]
                    if "/" not in rest:
                        continue                        # an object at the level itself: counted there
                    cp = task.parent + rest.split("/", 1)[0] + "/"
                    if cp < task.first:
                        continue
                    if cp > task.last:
                        done = True
                        break
                self._count(part, key, int(obj.get("Size", 0)))
            self._add(part)          # page by page: live progress, nothing kept
            part = Listing()
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            del page                 # not held while the next page is awaited: memory stays one page per thread
            if done or not token:
                break
        self._add(part)
        return []

    def _level(self, task: _Task) -> list[_Task]:
        part, dirs, token = Listing(), [], None
        while True:
            kwargs = {"Prefix": task.prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._list(**kwargs)
            for obj in page.get("Contents", ()):
                self._count(part, obj["Key"], int(obj.get("Size", 0)))
            dirs.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", ()))
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            del page
            if not token:
                break
        self._add(part)
        rel = task.prefix[len(self.root):]
        found: list[_Task] = []
        # the known levels were all scheduled at the start (see walk): not again
        plain = [d for d in dirs if d[len(self.root):] not in DESCEND + GROUPED]
        if task.split and rel != BLOB_DIRS and plain and task.budget // len(plain) >= 4:
            # few repositories (or namespaces): one level deeper, sharing the budget, so that no single
            # group is most of the work and no level becomes hundreds of tiny listings
            found.extend(_Task(prefix=d, delimiter=True, split=True, budget=task.budget // len(plain))
                         for d in plain)
        elif task.split:
            count = task.budget
            if rel == BLOB_DIRS and len(plain) == 256:
                count = 16 if self.concurrency <= 16 else 32    # whole first-hex (or half) runs: exact prefixes
            for first, last in _groups(sorted(plain), count):
                prefix = _common_prefix(first, last) if first != last else first
                found.append(_Task(prefix=max(prefix, task.prefix, key=len), parent=task.prefix,
                                   first=first, last=last))
        else:
            found.extend(_Task(prefix=d) for d in plain)
        return found

    def walk(self) -> Listing:
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="gcops-s3") as pool:
            # Every known level at once (a level that does not exist answers empty): no round trip waits
            # for its parent. Each level counts only its own objects and schedules unknown sub-directories.
            levels = [_Task(prefix=self.root + rel, delimiter=True, split=rel in GROUPED, budget=self.concurrency)
                      for rel in DESCEND + GROUPED]
            pending: set[Future] = {pool.submit(self.run_task, task) for task in levels}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        for task in future.result():
                            pending.add(pool.submit(self.run_task, task))
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return self.total


def list_storage(client, bucket: str, root: str, *, concurrency: int = 16,
                 on_progress: Callable[[int, int], None] | None = None,
                 select: frozenset[str] = frozenset()) -> Listing:
    """Totals of every object whose key starts with `root` ("" or "<dir>/"); with `select` (hex
    digests), also the bytes of those blobs. Raises S3Error."""
    return _Walk(client, bucket, root, concurrency, on_progress, select).walk()


def list_sequential(client, bucket: str, root: str) -> Listing:
    """The plain walk (one ListObjectsV2 page after the other): the benchmark's baseline. Raises S3Error."""
    walk = _Walk(client, bucket, root, 1, None)
    part, token = Listing(), None
    while True:
        kwargs = {"Prefix": root, "ContinuationToken": token} if token else {"Prefix": root}
        page = walk._list(**kwargs)
        for obj in page.get("Contents", ()):
            walk._count(part, obj["Key"], int(obj.get("Size", 0)))
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if not token:
            break
    walk._add(part)
    return walk.total
