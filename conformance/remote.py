"""Verify a checkpoint where it lives: ``https://...``, ``hf://org/name[@revision]`` and ``s3://...``.

Nothing is downloaded whole. ``open_remote`` fetches config.json and the index (bounded, like
local JSON), then for each shard its size and, through HTTP range requests, only its 8-byte
length and its header. It writes these into a temporary cache folder as *sparse* files of the
server's declared size, so the local header checks (folder.py, safeheader.py) run unchanged on
exactly the bytes the server sent. Tensor bytes are fetched later, on demand, by the reader
(``RemoteFiles.ensure``): the numeric rules fetch each layer's scales and zeros, the sampled
block of its packed codes and sampled windows of the float tensors; ``--reference`` (itself a
folder or a URL, conformance/reference.py ``opened``) and the functional check fetch what they
read, one decoder layer at a time (``RemoteFiles.ensure_tensors``, called by
awq_ref.checkpoint.lazy before it reads a layer). The temporary folder is removed after the run;
the fetched ranges stay in the persistent cache (remote_cache.py, ``CachedSource``), keyed by
each file's URL, size and validator, which a file's every answer must repeat.

``hf://org/name@rev/sub`` maps to the Hub's ``resolve`` URLs (``$HF_ENDPOINT``, default
https://huggingface.co; ``$HF_TOKEN`` is sent when set). ``s3://`` goes through fsspec and
needs ``s3fs`` installed.

Hostile servers: every request has a socket timeout and a total deadline
(``$AWQ_HARNESS_REMOTE_TIMEOUT`` seconds, default 30); a range response must be a 206 whose
Content-Range and length are exactly what was asked for (a server that ignores ranges, or
returns more or fewer bytes than declared, is refused, never read to the end); JSON files are
bounded; shard names in the index must be plain relative names (no scheme, host, absolute
path or ``..``), so an index can never send the verifier to another host or to a local file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from awq_harness.awq_ref.errors import CheckpointError
from awq_harness.conformance.findings import Finding
from awq_harness.conformance.folder import FILE_OUTSIDE_FOLDER, INDEX, MAX_JSON_FILE, SINGLE
from awq_harness.conformance.safeheader import FILE_FOLDER, FILE_HEADER, FILE_TRUNCATED, MAX_HEADER_BYTES

SCHEMES = ("https://", "http://", "hf://", "s3://")
BLOCK = 1 << 20
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class RemoteError(CheckpointError):
    """A remote file could not be read as declared (timeout, short or long answer, no range support)."""


def is_remote(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEMES)


def timeout_s() -> float:
    return float(os.environ.get("AWQ_HARNESS_REMOTE_TIMEOUT", "30"))


def safe_name(name: object) -> bool:
    """A shard name an index may use: relative, no scheme or host, no '..' segment."""
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and ".." not in name.split("/")


class HttpSource:
    """Files under one base URL, read with HTTP range requests."""

    def __init__(self, base: str, headers: dict[str, str] | None = None):
        self.base = base.rstrip("/") + "/"
        self.headers = headers or {}
        self.fetched = 0
        self.sizes: dict[str, int] = {}  # declared by HEAD; every range answer must agree
        self.validators: dict[str, str | None] = {}  # declared by HEAD (remote_cache.py)
        self.confirmed: dict[str, bool] = {}  # the last answer for a file carried the HEAD's validator

    def url(self, name: str) -> str:
        return self.base + urllib.parse.quote(name)

    def _open(self, name: str, method: str = "GET", extra: dict | None = None):
        req = urllib.request.Request(self.url(name), method=method, headers={**self.headers, **(extra or {})})
        try:
            resp = urllib.request.urlopen(req, timeout=timeout_s())
            self._check_validator(name, resp, method)
            return resp
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise RemoteError(f"{name}: HTTP {err.code} from the server") from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RemoteError(f"{name}: cannot connect ({str(getattr(err, 'reason', err))[:80]})") from None

    def _check_validator(self, name: str, resp, method: str) -> None:
        """A file must not change between the HEAD that named its version and the reads of it."""
        seen = validator(resp.headers)
        if method == "HEAD" or name not in self.validators:
            return
        known = self.validators[name]
        if seen is not None and known is not None and seen != known:
            resp.close()
            raise RemoteError(f"{name}: changed on the server during the run (validator {known[:40]!r}, "
                              f"now {seen[:40]!r})")
        self.confirmed[name] = seen is not None and seen == known

    def _read(self, resp, name: str, want: int) -> bytes:
        """Exactly ``want`` bytes, within the total deadline; more or fewer is an error."""
        deadline, out = time.monotonic() + timeout_s(), bytearray()
        try:
            while len(out) < want + 1:
                if time.monotonic() > deadline:
                    raise RemoteError(f"{name}: the server is too slow (no answer within {timeout_s():g} s)")
                piece = resp.read(min(BLOCK, want + 1 - len(out)))
                if not piece:
                    break
                out += piece
        except (OSError, ValueError) as err:  # socket timeouts, resets, IncompleteRead
            raise RemoteError(f"{name}: the response broke off after {len(out)} of {want} bytes "
                              f"({type(err).__name__})") from None
        finally:
            resp.close()
        self.fetched += len(out)
        if len(out) != want:
            raise RemoteError(f"{name}: the server sent {len(out) if len(out) <= want else 'more'} bytes "
                              f"where {want} were declared")
        return bytes(out)

    def size(self, name: str) -> int | None:
        resp = self._open(name, "HEAD")
        if resp is None:
            return None
        resp.close()
        length = resp.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RemoteError(f"{name}: the server declares no Content-Length")
        self.sizes[name], self.validators[name] = int(length), validator(resp.headers)
        return int(length)

    def read_small(self, name: str, limit: int) -> bytes | None:
        resp = self._open(name)
        if resp is None:
            return None
        length = resp.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            resp.close()
            raise RemoteError(f"{name}: declares {length} bytes, more than the {limit}-byte limit; not read")
        if length is None:
            raise RemoteError(f"{name}: the server declares no Content-Length")
        return self._read(resp, name, int(length))

    def read(self, name: str, start: int, n: int) -> bytes:
        if n <= 0:
            return b""
        resp = self._open(name, extra={"Range": f"bytes={start}-{start + n - 1}"})
        if resp is None:
            raise RemoteError(f"{name}: disappeared from the server (404)")
        got = resp.headers.get("Content-Range", "")
        if resp.status != 206 or not got.startswith(f"bytes {start}-{start + n - 1}/"):
            resp.close()
            raise RemoteError(f"{name}: the server did not answer the range request for bytes "
                              f"[{start}, {start + n}) (status {resp.status}, Content-Range {got[:60]!r})")
        total = got.rpartition("/")[2]
        if name in self.sizes and total != str(self.sizes[name]):
            resp.close()
            raise RemoteError(f"{name}: the server declared {self.sizes[name]} bytes but its range answer "
                              f"says {total[:20]}")
        return self._read(resp, name, n)


class FsspecSource:
    """Files under an fsspec URL (s3:// with s3fs installed)."""

    def __init__(self, base: str):
        try:
            import fsspec

            t = timeout_s()  # botocore's own timeouts and retries bound a silent S3 endpoint
            options = {"config_kwargs": {"connect_timeout": t, "read_timeout": t, "retries": {"max_attempts": 2}}}
            self.fs, self.root = fsspec.core.url_to_fs(base, **(options if base.startswith("s3://") else {}))
        except ImportError as err:
            raise RemoteError(f"{base}: reading it needs {err.name or 's3fs'} installed (pip install s3fs)") from None
        self.fetched = 0
        self.protocol = base.split("://", 1)[0]
        self.sizes: dict[str, int] = {}
        self.validators: dict[str, str | None] = {}
        self.confirmed: dict[str, bool] = {}  # fsspec reads do not show the version they read: trusted

    def _path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def url(self, name: str) -> str:
        return f"{self.protocol}://{self._path(name)}"

    def size(self, name: str) -> int | None:
        try:
            info = self.fs.info(self._path(name))
            if info.get("type") == "directory":
                return None
            tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or info.get("mtime")
            self.validators[name] = None if tag is None else str(tag)
            self.confirmed[name] = tag is not None
            self.sizes[name] = int(info["size"])
            return self.sizes[name]
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - any client failure is the remote's
            raise RemoteError(f"{name}: {type(err).__name__}: {str(err)[:80]}") from None

    def read(self, name: str, start: int, n: int) -> bytes:
        try:
            data = self.fs.cat_file(self._path(name), start=start, end=start + n)
        except Exception as err:  # noqa: BLE001
            raise RemoteError(f"{name}: {type(err).__name__}: {str(err)[:80]}") from None
        self.fetched += len(data)
        if len(data) != n:
            raise RemoteError(f"{name}: got {len(data)} bytes where {n} were asked for")
        return data

    def read_small(self, name: str, limit: int) -> bytes | None:
        size = self.size(name)
        if size is None:
            return None
        if size > limit:
            raise RemoteError(f"{name}: {size} bytes, more than the {limit}-byte limit; not read")
        return self.read(name, 0, size)


def validator(headers) -> str | None:
    """What names a file's version: its ETag, else its Last-Modified date (with the Hub's commit)."""
    tag = headers.get("ETag") or headers.get("Last-Modified")
    return None if not tag else f"{tag}|{headers.get('X-Repo-Commit', '')}"


class CachedSource:
    """A source whose ranges go through the persistent cache (remote_cache.py), keyed by the
    file's URL, size and validator; ``fetched`` counts only the bytes that crossed the network."""

    def __init__(self, source, cache):
        self.source, self.cache = source, cache
        self.from_cache = 0  # bytes served by the cache

    @property
    def fetched(self) -> int:
        return self.source.fetched

    def size(self, name: str) -> int | None:
        return self.source.size(name)

    def _key(self, name: str) -> tuple[str, str] | None:
        tag = self.source.validators.get(name)
        return None if tag is None else (self.source.url(name), f"{tag}|{self.source.sizes.get(name)}")

    def read_small(self, name: str, limit: int) -> bytes | None:
        size = self.source.size(name)
        if size is None:
            return None
        if size > limit:
            raise RemoteError(f"{name}: declares {size} bytes, more than the {limit}-byte limit; not read")
        key = self._key(name)
        held = self.cache.pieces(*key, 0, size) if key else []
        if held and held[0][0] == 0 and len(held[0][1]) == size:
            self.from_cache += size
            return held[0][1]
        data = self.source.read_small(name, limit)
        if data is not None and len(data) != size:
            raise RemoteError(f"{name}: the server declared {size} bytes but sent {len(data)}")
        self._keep(name, key, 0, data or b"")
        return data

    def _keep(self, name: str, key, start: int, data: bytes) -> None:
        if key and self.source.confirmed.get(name):
            self.cache.put(*key, start, data)

    def read(self, name: str, start: int, n: int) -> bytes:
        key = self._key(name)
        if key is None or n <= 0:
            return self.source.read(name, start, n)
        end, held = start + n, self.cache.pieces(*key, start, start + n)
        if not held:  # the common first read: no copy
            data = self.source.read(name, start, n)
            self._keep(name, key, start, data)
            return data
        out, covered = bytearray(n), []
        for a, data in held:
            lo, hi = max(a, start), min(a + len(data), end)
            out[lo - start: hi - start] = data[lo - a: hi - a]
            covered.append((lo, hi))
            self.from_cache += hi - lo
        for a, b in _gaps(covered, start, end):
            data = self.source.read(name, a, b - a)
            out[a - start: b - start] = data
            self._keep(name, key, a, data)
        return bytes(out)

    def close(self) -> None:
        self.cache.evict()


def _gaps(covered: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end) that no (a, b) in ``covered`` holds."""
    gaps, pos = [], start
    for a, b in sorted(covered):
        if b <= pos or a >= end:
            continue
        if a > pos:
            gaps.append((pos, a))
        pos = max(pos, b)
    return gaps + ([(pos, end)] if pos < end else [])


def source_for(url: str):
    if url.startswith("hf://"):
        repo, _, sub = url[len("hf://"):].partition("/")
        org_name = repo + "/" + sub.split("/", 1)[0] if sub else repo
        rest = sub.split("/", 1)[1] if "/" in sub else ""
        name, _, rev = org_name.partition("@")
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        token = os.environ.get("HF_TOKEN")
        base = f"{endpoint}/{name}/resolve/{urllib.parse.quote(rev or 'main', safe='')}/{rest}"
        return HttpSource(base, {"Authorization": f"Bearer {token}"} if token else None)
    if url.startswith(("https://", "http://")):
        return HttpSource(url)
    return FsspecSource(url)


@dataclass
class RemoteFiles:
    """The sparse cache files of one remote checkpoint and which byte ranges they hold."""
    source: object
    root: Path
    files: dict[Path, str] = field(default_factory=dict)  # local path -> remote name
    have: dict[Path, list[tuple[int, int]]] = field(default_factory=dict)
    headers: dict[Path, dict[str, tuple[int, int]]] = field(default_factory=dict)
    declared: int = 0

    def add(self, name: str, size: int, head: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(head)
            f.truncate(size)
        self.files[path], self.have[path] = name, [(0, len(head))]
        self.declared += size

    def ensure(self, path: Path, start: int, n: int) -> None:
        """Fetch the bytes [start, start + n) of this cache file unless it holds them already."""
        if path not in self.files:
            return
        for a, b in _gaps(self.have[path], start, start + n):
            data = self.source.read(self.files[path], a, b - a)
            with open(path, "r+b") as f:
                f.seek(a)
                f.write(data)
            self.have[path].append((a, b))

    def ensure_tensors(self, path: Path, names: list[str]) -> None:
        """Fetch these tensors' bytes (by their names in the file's header): the lazy per-layer
        reader (awq_ref.checkpoint.lazy.fetching) calls this before it reads a layer."""
        local = next((p for p in self.files if p.resolve() == Path(path).resolve()), None)
        if local is None:
            raise RemoteError(f"{Path(path).name}: not a file of the remote checkpoint")
        ranges = self._offsets(local)
        for name in names:
            if name not in ranges:
                raise RemoteError(f"{self.files[local]}: no tensor {name[:80]} in its header")
            a, b = ranges[name]
            self.ensure(local, a, b - a)

    def _offsets(self, path: Path) -> dict[str, tuple[int, int]]:
        """name -> absolute byte range, from the cached header (which the header checks passed)."""
        if path not in self.headers:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(min(n, MAX_HEADER_BYTES)))
            self.headers[path] = {k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
                                  for k, v in header.items() if k != "__metadata__"}
        return self.headers[path]

    def summary(self, what: str = "the checkpoint") -> str:
        cached = getattr(self.source, "from_cache", 0)
        return (f"read remotely: fetched {self.source.fetched} bytes of {self.declared} "
                f"({self.source.fetched / max(1, self.declared):.3%} of {what})"
                + (f"; {cached} bytes from the local cache" if cached else ""))


def _json_file(remote: RemoteFiles, name: str, findings: list[Finding]) -> object | None:
    try:
        raw = remote.source.read_small(name, MAX_JSON_FILE)
    except RemoteError as err:
        findings.append(FILE_FOLDER.finding(str(err), name))
        return None
    if raw is None:
        return None
    (remote.root / name).write_bytes(raw)
    remote.declared += len(raw)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None  # open_folder reports it, from the cached copy


def _shard_names(index: object, findings: list[Finding]) -> list[str]:
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict):
        return [SINGLE]
    names = sorted({v for v in wm.values() if isinstance(v, str)})
    for bad in [n for n in names if not safe_name(n)]:
        findings.append(FILE_OUTSIDE_FOLDER.finding(
            f"index names shard {bad[:80]!r}: another host, a local path or outside the checkpoint; not fetched",
            INDEX))
    return [n for n in names if safe_name(n)]


def _shard(remote: RemoteFiles, name: str, findings: list[Finding]) -> None:
    size = remote.source.size(name)
    if size is None:
        return  # open_folder reports the missing shard (or the folder without tensors)
    head = remote.source.read(name, 0, min(8, size))
    if len(head) == 8:
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            findings.append(FILE_HEADER.finding(
                f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit; not fetched", name))
        elif 8 + n <= size:
            head += remote.source.read(name, 8, n)
    remote.add(name, size, head)


def open_remote(url: str, cache=None, side_files: tuple[str, ...] = ()) -> tuple[RemoteFiles, list[Finding]]:
    """Fetch a remote checkpoint's JSON files and shard headers into a new sparse cache folder;
    the caller removes ``remote.root`` (``close``). ``cache``: a remote_cache.RangeCache (None: none);
    ``side_files``: small files fetched whole if the server has them (a reference's tokenizer)."""
    source = source_for(url)
    remote = RemoteFiles(source if cache is None else CachedSource(source, cache),
                         Path(tempfile.mkdtemp(prefix="awq-harness-remote-")))
    findings: list[Finding] = []
    _json_file(remote, "config.json", findings)
    for name in side_files:
        _side_file(remote, name, findings)
    names = _shard_names(_json_file(remote, INDEX, findings), findings)
    for name in names:
        try:
            _shard(remote, name, findings)
        except RemoteError as err:
            findings.append(FILE_TRUNCATED.finding(str(err), name))
        except OSError as err:
            findings.append(FILE_FOLDER.finding(f"cannot cache it: {err.strerror}", name))
    return remote, findings


def _side_file(remote: RemoteFiles, name: str, findings: list[Finding]) -> None:
    try:
        raw = remote.source.read_small(name, MAX_JSON_FILE)
    except RemoteError as err:
        findings.append(FILE_FOLDER.finding(str(err), name, severity="warning"))
        return
    if raw is not None:
        (remote.root / name).write_bytes(raw)
        remote.declared += len(raw)


def close(remote: RemoteFiles) -> None:
    shutil.rmtree(remote.root, ignore_errors=True)
    if isinstance(remote.source, CachedSource):
        remote.source.close()
