"""A persistent cache of the byte ranges fetched from remote checkpoints.

Each remote file is an *entry*, a folder named by the hash of its URL and its validator: the
ETag, else the Last-Modified date, together with its size and, for the Hub, the commit the
revision resolved to (``X-Repo-Commit``). A file that changed on the server has another
validator, so its old bytes are never used for it; a file whose server gives no validator at
all is not cached. Every fetched range is a blob ``<start>-<end>-<sha256>`` in its entry,
written to a temporary name and renamed into place, so two processes sharing the cache never
see half a blob and need no lock (the same range fetched twice renames onto equal bytes). A
blob is used only after its length and hash match its name: a corrupted or truncated blob is
deleted and the range fetched again.

The cache is bounded (``$AWQ_HARNESS_REMOTE_CACHE_BYTES``, default 10 GiB; 0 turns it off):
using a blob touches its modification time, and once the blobs exceed the bound the least
recently used are deleted. A blob deleted by another process's eviction is simply a miss.
It lives in ``$AWQ_HARNESS_REMOTE_CACHE``, else ``remote/`` under the harness cache dir.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

from awq_harness.awq_ref.data.cache import remote_cache_bytes, remote_cache_dir

STALE_TMP_SECONDS = 3600  # a temporary blob older than this was left by a process that died


def _blob_name(start: int, end: int, digest: str) -> str:
    return f"{start:016x}-{end:016x}-{digest}"


def _parse(name: str) -> tuple[int, int, str] | None:
    parts = name.split("-")
    if len(parts) != 3 or len(parts[2]) != 64:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16), parts[2]
    except ValueError:
        return None


class RangeCache:
    def __init__(self, root: Path | None = None, bound: int | None = None):
        self.root = Path(root) if root is not None else remote_cache_dir()
        self.bound = remote_cache_bytes() if bound is None else bound
        self.added = 0

    def entry(self, url: str, validator: str) -> Path:
        return self.root / hashlib.sha256(f"{url}\0{validator}".encode()).hexdigest()[:40]

    def pieces(self, url: str, validator: str, start: int, end: int) -> list[tuple[int, bytes]]:
        """(offset, bytes) of the verified blobs overlapping [start, end)."""
        folder, out = self.entry(url, validator), []
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        for name in names:
            parsed = _parse(name)
            if parsed is None or parsed[1] <= start or parsed[0] >= end:
                continue
            data = self._blob(folder / name, *parsed)
            if data is not None:
                out.append((parsed[0], data))
        return sorted(out, key=lambda p: p[0])

    def _blob(self, path: Path, a: int, b: int, digest: str) -> bytes | None:
        try:
            data = path.read_bytes()
        except OSError:
            return None  # evicted meanwhile
        if len(data) != b - a or hashlib.sha256(data).hexdigest() != digest:
            path.unlink(missing_ok=True)  # corrupted: fetched again
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used
        return data

    def put(self, url: str, validator: str, start: int, data: bytes) -> None:
        if not data:
            return
        folder = self.entry(url, validator)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / _blob_name(start, start + len(data), hashlib.sha256(data).hexdigest())
            tmp = folder / f"tmp.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
            tmp.write_bytes(data)
            os.replace(tmp, final)
        except OSError:
            return  # a full or read-only cache only costs refetching
        self.added += len(data)
        if self.added > self.bound // 8:
            self.evict()

    def evict(self) -> None:
        """Delete the least recently used blobs until the cache holds at most ``bound`` bytes."""
        self.added = 0
        blobs, total, now = [], 0, time.time()
        for entry in _scandir(self.root):
            for item in _scandir(entry.path):
                try:
                    st = item.stat()
                except OSError:
                    continue
                if item.name.startswith("tmp.") and now - st.st_mtime < STALE_TMP_SECONDS:
                    continue
                blobs.append((st.st_mtime, st.st_size, item.path))
                total += st.st_size
        for _, size, path in sorted(blobs):
            if total <= self.bound:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size
        for entry in _scandir(self.root):
            with contextlib.suppress(OSError):
                os.rmdir(entry.path)  # only empty entries go


def _scandir(path) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def open_cache(enabled: bool = True) -> RangeCache | None:
    """The shared cache, or None when turned off (``--no-cache`` or a bound of 0)."""
    if not enabled or remote_cache_bytes() <= 0:
        return None
    return RangeCache()
