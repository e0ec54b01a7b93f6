"""Read a safetensors header ourselves, distrusting every byte, before anything maps the file.

Layout: 8-byte little-endian header length n, n bytes of UTF-8 JSON, then the data section.
Each JSON entry is ``name: {"dtype", "shape", "data_offsets": [begin, end]}`` with offsets
relative to the data section. We bound n (and the number of JSON values), check every field's
type, that dtype x shape = end - begin, that ranges lie inside the data section and do not
overlap, and that the file is not truncated. Only entries that pass become ``TensorInfo``.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from awq_harness.conformance.findings import Finding, Rule

# file.folder is checked by folder.py and runner.py too; it is declared here, where the first file
# of the folder is read, because folder.py reads its files through this module
FILE_FOLDER = Rule("file.folder", "the checkpoint folder exists, is a folder and holds tensor files")
FILE_HEADER = Rule("file.header", "safetensors header: bounded length, valid JSON, well-formed entries")
FILE_DTYPE = Rule("file.dtype", "every tensor has a known safetensors dtype")
FILE_OFFSETS = Rule("file.offsets", "tensor byte ranges lie inside the data section and do not overlap")
FILE_BYTE_LENGTH = Rule("file.byte-length", "dtype x shape equals each tensor's byte length")
FILE_TRUNCATED = Rule("file.truncated", "the file is as long as its header says")

MAX_HEADER_BYTES = 16 * 1024 * 1024  # ~150k tensors; real headers are ~100 bytes per tensor
MAX_JSON_VALUES = 1_000_000  # bounds the memory json.loads can take on a crafted header
MAX_DIMS = 8

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in the file
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES


@dataclass
class Header:
    path: Path
    tensors: dict[str, TensorInfo]
    findings: list[Finding]
    readable: bool = True


def _fail(path: Path, rule: Rule, message: str, tensor: str | None = None) -> Finding:
    return rule.finding(message, path.name, tensor, "error")


def _read_prefix(path: Path, size: int) -> tuple[int | None, bytes | None, Finding | None]:
    if size < 8:
        return None, None, _fail(path, FILE_TRUNCATED,
                                 f"only {size} bytes; a safetensors file starts with an 8-byte header length")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER_BYTES:
            return None, None, _fail(path, FILE_HEADER,
                                     f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit; "
                                     "refusing to read it")
        if 8 + n > size:
            return None, None, _fail(path, FILE_TRUNCATED,
                                     f"header says {n} bytes but the file has only {size - 8} after the length")
        return n, f.read(n), None


def _decode(path: Path, raw: bytes) -> tuple[dict | None, Finding | None]:
    if raw.count(b",") + raw.count(b"[") > MAX_JSON_VALUES:
        return None, _fail(path, FILE_HEADER, f"header holds more than {MAX_JSON_VALUES} JSON values; refusing it")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return None, _fail(path, FILE_HEADER, f"header is not valid UTF-8 JSON ({str(err)[:80]})")
    if not isinstance(obj, dict):
        return None, _fail(path, FILE_HEADER, "header JSON is not an object")
    return obj, None


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _entry(path: Path, name: str, e, data_start: int) -> tuple[TensorInfo | None, Finding | None]:
    if not isinstance(e, dict) or not {"dtype", "shape", "data_offsets"} <= set(e):
        return None, _fail(path, FILE_HEADER, "entry lacks dtype, shape or data_offsets", name)
    dtype, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) for d in shape):
        return None, _fail(path, FILE_HEADER,
                           f"shape {str(shape)[:60]} is not a list of at most {MAX_DIMS} non-negative ints", name)
    if not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs) or offs[0] > offs[1]:
        return None, _fail(path, FILE_OFFSETS,
                           f"data_offsets {str(offs)[:60]} is not [begin, end] with begin <= end", name)
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        return None, _fail(path, FILE_DTYPE, f"unknown dtype {str(dtype)[:20]!r}", name)
    want = math.prod(shape) * DTYPE_BYTES[dtype]
    if want != offs[1] - offs[0]:
        return None, _fail(path, FILE_BYTE_LENGTH,
                           f"{dtype} x {shape} needs {want} bytes but offsets span {offs[1] - offs[0]}", name)
    return TensorInfo(name, path, dtype, tuple(shape), data_start + offs[0], want), None


def _check_ranges(path: Path, infos: dict[str, TensorInfo], data_start: int, data_len: int) -> list[Finding]:
    findings, last_end, last_name = [], data_start, None
    for info in sorted(infos.values(), key=lambda i: (i.start, i.nbytes)):
        if info.start + info.nbytes > data_start + data_len:
            begin = info.start - data_start
            findings.append(_fail(path, FILE_TRUNCATED,
                                  f"bytes [{begin}, {begin + info.nbytes}) lie past the end of the data "
                                  f"section ({data_len} bytes): file truncated or offsets wrong", info.name))
            del infos[info.name]
            continue
        if info.start < last_end and info.nbytes:
            findings.append(_fail(path, FILE_OFFSETS, f"bytes overlap tensor {last_name}", info.name))
            del infos[info.name]
            continue
        if info.start > last_end:
            findings.append(FILE_OFFSETS.finding(
                f"{info.start - last_end} unindexed bytes before this tensor", path.name,
                info.name, severity="warning"))
        if info.nbytes:
            last_end, last_name = info.start + info.nbytes, info.name
    return findings


def read_header(path: Path) -> Header:
    """Parse and validate; a file that fails early yields no tensors and ``readable=False``."""
    try:
        size = os.stat(path).st_size
        n, raw, bad = _read_prefix(path, size)
    except OSError as err:
        return Header(path, {}, [_fail(path, FILE_FOLDER, f"cannot read: {err.strerror}")], False)
    obj, bad = (None, bad) if bad else _decode(path, raw)
    if bad:
        return Header(path, {}, [bad], False)
    data_start, infos, findings = 8 + n, {}, []
    meta = obj.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        findings.append(_fail(path, FILE_HEADER, "__metadata__ is not a string-to-string map"))
    for name, entry in obj.items():
        info, bad = _entry(path, name, entry, data_start)
        findings += [bad] if bad else []
        if info:
            infos[name] = info
    ranges = _check_ranges(path, infos, data_start, size - data_start)
    if findings or any(f.severity == "error" for f in ranges):  # gaps left by rejected entries say nothing new
        ranges = [f for f in ranges if f.severity == "error"]
    return Header(path, infos, findings + ranges)
