"""Find a checkpoint's files without trusting it: no path or symlink out of the folder, no
unpickling, bounded JSON, and an index that must agree with its shards.

``open_folder`` returns the parsed config (or None), every tensor that passed its header
checks (``TensorInfo`` by name) and the findings met on the way.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.safeheader import FILE_FOLDER, TensorInfo, read_header

FILE_OUTSIDE_FOLDER = Rule("file.outside-folder",
                           "no file, symlink or index entry points outside the checkpoint folder")
INDEX_VALID = Rule("index.valid", "model.safetensors.index.json is valid JSON with a weight_map")
INDEX_MISSING_SHARD = Rule("index.missing-shard", "every shard named by the index exists")
INDEX_MISSING_TENSOR = Rule("index.missing-tensor", "every tensor named by the index is in its shard")
INDEX_EXTRA_TENSOR = Rule("index.extra-tensor", "every tensor in a shard is named by the index for that shard")
INDEX_DUPLICATE = Rule("index.duplicate", "each tensor lives in exactly one shard")
CONFIG_PRESENT = Rule("config.present", "config.json exists and is a JSON object")

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
MAX_JSON_FILE = 64 * 1024 * 1024


@dataclass
class Folder:
    root: Path
    config: dict | None = None
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    readable: bool = True
    pickled: list[Path] = field(default_factory=list)

    def add(self, rule: Rule, severity: str, message: str, file: str | None = None, tensor: str | None = None):
        self.findings.append(rule.finding(message, file, tensor, severity))


def _inside(root: Path, name: str) -> Path | None:
    """The real path of ``name`` under ``root``, or None when it escapes (.., absolute, symlink)."""
    if not isinstance(name, str) or not name or "\x00" in name or os.path.isabs(name):
        return None
    try:
        real = (root / name).resolve()
        return real if real.is_relative_to(root.resolve()) else None
    except (OSError, RuntimeError, ValueError):  # symlink loops, over-long names
        return None


def _entries(folder: Folder) -> dict[str, Path]:
    """Top-level files by name; symlinks that leave the folder are reported and dropped."""
    files = {}
    for entry in sorted(os.scandir(folder.root), key=lambda e: e.name):
        real = _inside(folder.root, entry.name)
        if real is None:
            folder.add(FILE_OUTSIDE_FOLDER, "error",
                       "symlink points outside the checkpoint folder (or loops); not followed", entry.name)
        elif real.is_file():
            files[entry.name] = real
    return files


def load_json(folder: Folder, path: Path, rule: Rule) -> object | None:
    try:
        if path.stat().st_size > MAX_JSON_FILE:
            folder.add(rule, "error", f"larger than {MAX_JSON_FILE} bytes; refusing to parse", path.name)
            return None
        return json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        folder.add(rule, "error", f"not valid JSON ({str(err)[:80]})", path.name)
        return None


def _read_config(folder: Folder, files: dict[str, Path]) -> None:
    if "config.json" not in files:
        folder.add(CONFIG_PRESENT, "error",
                   "config.json is missing: loaders cannot tell this is a quantised model", "config.json")
        return
    cfg = load_json(folder, files["config.json"], CONFIG_PRESENT)
    if cfg is not None and not isinstance(cfg, dict):
        folder.add(CONFIG_PRESENT, "error", "config.json is not a JSON object", "config.json")
        cfg = None
    folder.config = cfg


def _weight_map(folder: Folder, path: Path) -> dict[str, str] | None:
    obj = load_json(folder, path, INDEX_VALID)
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
        if obj is not None:
            folder.add(INDEX_VALID, "error", "no weight_map object of tensor name -> shard file", INDEX)
        return None
    return wm


def _shards_of(folder: Folder, wm: dict[str, str]) -> dict[str, Path]:
    shards = {}
    for shard in sorted(set(wm.values())):
        real = _inside(folder.root, shard)
        if real is None:
            folder.add(FILE_OUTSIDE_FOLDER, "error",
                       f"index names shard {shard[:80]!r} outside the checkpoint folder; not read", INDEX)
        elif not real.is_file():
            folder.add(INDEX_MISSING_SHARD, "error", f"shard {shard[:80]!r} named by the index does not exist", INDEX)
        else:
            shards[shard] = real
    return shards


def _read_shard(folder: Folder, shard: str, path: Path) -> dict[str, TensorInfo]:
    header = read_header(path)
    folder.findings += header.findings
    return header.tensors


def _read_indexed(folder: Folder, files: dict[str, Path]) -> None:
    wm = _weight_map(folder, files[INDEX])
    if wm is None:
        shards = {n: p for n, p in files.items() if n.endswith(".safetensors")}
        return _read_unindexed(folder, shards)
    found: dict[str, list[tuple[str, TensorInfo]]] = {}
    broken = set()
    for shard, path in _shards_of(folder, wm).items():
        before = len(folder.findings)
        for name, info in _read_shard(folder, shard, path).items():
            found.setdefault(name, []).append((shard, info))
        if any(f.severity == "error" for f in folder.findings[before:]):
            broken.add(shard)
    for name, places in sorted(found.items()):
        _place(folder, wm, name, places)
    for name, shard in sorted(wm.items()):
        if (name not in found and shard not in broken and _inside(folder.root, shard)
                and (folder.root / shard).is_file()):
            folder.add(INDEX_MISSING_TENSOR, "error",
                       f"index puts it in {shard[:80]} but that shard lacks it", INDEX, name)


def _place(folder: Folder, wm: dict[str, str], name: str, places: list[tuple[str, TensorInfo]]) -> None:
    shards = [s for s, _ in places]
    if len(places) > 1:
        folder.add(INDEX_DUPLICATE, "error", f"stored in {len(places)} shards: {', '.join(shards)}", shards[-1], name)
    listed = [info for s, info in places if s == wm.get(name)]
    if listed:
        folder.tensors[name] = listed[0]
    elif name in wm:
        folder.add(INDEX_EXTRA_TENSOR, "error",
                   f"is in {shards[0]} but the index names {wm[name][:80]!r}", shards[0], name)
    else:
        folder.add(INDEX_EXTRA_TENSOR, "error", f"is in {shards[0]} but not named by the index", shards[0], name)


def _read_unindexed(folder: Folder, shards: dict[str, Path]) -> None:
    if len(shards) > 1:
        folder.add(INDEX_VALID, "warning",
                   f"{len(shards)} safetensors files but no usable {INDEX}; transformers will not load them")
    for shard, path in sorted(shards.items()):
        for name, info in _read_shard(folder, shard, path).items():
            if name in folder.tensors:
                folder.add(INDEX_DUPLICATE, "error", f"also in {folder.tensors[name].path.name}", shard, name)
            folder.tensors[name] = info


def _read_tensors(folder: Folder, files: dict[str, Path]) -> None:
    shards = {n: p for n, p in files.items() if n.endswith(".safetensors")}
    folder.pickled = [p for n, p in sorted(files.items()) if n.endswith(PICKLE_SUFFIXES)]
    if INDEX in files:
        _read_indexed(folder, files)
    elif shards:
        _read_unindexed(folder, shards)


def open_folder(path: str | os.PathLike) -> Folder:
    folder = Folder(Path(path))
    if not folder.root.is_dir():
        folder.add(FILE_FOLDER, "error", f"{path} is not a folder")
        folder.readable = False
        return folder
    try:
        files = _entries(folder)
    except OSError as err:
        folder.add(FILE_FOLDER, "error", f"cannot list the folder: {err.strerror}")
        folder.readable = False
        return folder
    _read_config(folder, files)
    _read_tensors(folder, files)
    return folder
