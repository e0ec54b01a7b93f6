"""Lossless conversion between AutoAWQ GEMM and compressed-tensors pack-quantized.

Both store the same unsigned codes, zeros and scales (awq-format.md §2.7): GEMM packs codes
along N with AWQ's interleave, compressed-tensors along K in natural order with zeros packed
along N, and scales transposed. We unpack to (q, z, s) and repack, so qweight, qzeros and
scales come back bit-identical after GEMM -> compressed-tensors -> GEMM, and the dequantised
weights are bit-identical in both directions. Every other tensor is copied byte for byte.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from awq_ref.checkpoint.atomic import atomic_directory
from awq_ref.errors import HarnessError
from awq_ref.formats import awq_gemm, compressed_tensors
from awq_ref.primitives.quant import QuantSpec
from conformance import decode
from conformance.declared import Declared
from conformance.folder import INDEX, PICKLE_SUFFIXES
from conformance.runner import load_layers, verify
from conformance.structure import Layer

TARGETS = (compressed_tensors.NAME, awq_gemm.NAME)  # format names, as --to takes them
MAX_SHARD_BYTES = 5 * 1000**3
CT_VERSION = "0.19.0"  # the compressed-tensors release whose config we write


def ct_config(decl: Declared) -> dict:
    per_channel = decl.group_size == -1
    weights = {"num_bits": 4, "type": "int", "symmetric": not decl.zero_point,
               "strategy": "channel" if per_channel else "group",
               "group_size": None if per_channel else decl.group_size,
               "dynamic": False, "actorder": None, "block_structure": None, "observer": "minmax", "observer_kwargs": {}}
    return {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
            "version": CT_VERSION, "ignore": ["lm_head"] + [f"re:.*{m}.*" for m in decl.skip],
            "config_groups": {"group_0": {"targets": ["Linear"], "format": "pack-quantized", "weights": weights,
                                          "input_activations": None, "output_activations": None}},
            "kv_cache_scheme": None, "sparsity_config": {}, "transform_config": {}}


def _substring(entry: str) -> str:
    if entry.startswith("re:.*") and entry.endswith(".*") and not any(c in entry[5:-2] for c in "\\[](){}*+?|^$"):
        return entry[5:-2]
    if not entry.startswith("re:"):
        return entry
    raise HarnessError(f"ignore pattern {entry!r} has no AutoAWQ modules_to_not_convert equivalent")


def awq_config(decl: Declared) -> dict:
    skip = [_substring(e) for e in decl.skip if e != "lm_head"]
    return {"quant_method": "awq", "bits": 4, "group_size": decl.group_size, "zero_point": decl.zero_point,
            "version": "gemm", "modules_to_not_convert": skip or None}


def _convert_layer(layer: Layer, tensors: dict[str, torch.Tensor], target: str,
                   zero_point: bool) -> dict[str, torch.Tensor]:
    # The declared zero point decides whether compressed-tensors gets weight_zero_point: a
    # symmetric AWQ file stores the implicit zero 8 in qzeros (the gate checked they are 8).
    qw = replace(decode.full(layer, tensors, v1=False), spec=QuantSpec(4, layer.group_width, zero_point))
    scale_dtype = tensors[layer.layout.SCALES].dtype
    module = compressed_tensors if target == "compressed-tensors" else awq_gemm
    out = module.pack(qw, scale_dtype=scale_dtype)
    if "bias" in tensors:
        out["bias"] = tensors["bias"]
    return {f"{layer.prefix}.{s}": t for s, t in out.items()}


def _gate(src: str, target: str) -> None:
    report = verify(src)
    errors = [f for f in report.findings if f.severity == "error"]
    if not report.readable or errors:
        first = errors[0].line() if errors else "unreadable"
        raise HarnessError(f"{src} does not verify ({len(errors)} errors; first: {first}); fix it before converting")
    if report.format not in TARGETS:
        raise HarnessError(f"{src} is {report.format}; convert reads AutoAWQ GEMM or compressed-tensors")
    if report.format == target:
        raise HarnessError(f"{src} is already {report.format}")


def _converted_tensors(src: str, target: str):
    folder, decl, layers, reader, _ = load_layers(src)
    owned = {i.name for layer in layers for i in layer.infos.values()}
    for layer in layers:
        yield _convert_layer(layer, {s: reader.get(i) for s, i in layer.infos.items()}, target, decl.zero_point)
    for name, info in sorted(folder.tensors.items()):
        if name not in owned:
            yield {name: reader.get(info)}


def _write_shards(tensors, out: Path) -> None:
    shards, current, size = [], {}, 0
    for group in tensors:
        nbytes = sum(t.numel() * t.element_size() for t in group.values())
        if current and size + nbytes > MAX_SHARD_BYTES:
            shards.append(current)
            current, size = {}, 0
        current.update(group)
        size += nbytes
    shards.append(current)
    names = (["model.safetensors"] if len(shards) == 1
             else [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)])
    for name, shard in zip(names, shards):
        save_file({k: v.contiguous() for k, v in sorted(shard.items())}, out / name, metadata={"format": "pt"})
    if len(shards) > 1:
        weight_map = {k: name for name, shard in zip(names, shards) for k in shard}
        (out / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))


def _copy_side_files(src: Path, out: Path, config: dict) -> None:
    for entry in os.scandir(src):
        skip = (entry.name == "config.json" or entry.name == INDEX
                or entry.name.endswith((".safetensors",) + PICKLE_SUFFIXES))
        if not skip and entry.is_file(follow_symlinks=False):
            (out / entry.name).write_bytes(Path(entry.path).read_bytes())
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def convert(src: str | Path, dst: str | Path, target: str, overwrite: bool = False) -> Path:
    if target not in TARGETS:
        raise HarnessError(f"--to {target!r}: choose from {sorted(TARGETS)}")
    src = str(src)
    _gate(src, target)
    folder, decl, _, _, _ = load_layers(src)
    config = dict(folder.config)
    config["quantization_config"] = ct_config(decl) if target == "compressed-tensors" else awq_config(decl)
    with atomic_directory(dst, replace=overwrite) as staging:
        _write_shards(_converted_tensors(src, target), staging)
        _copy_side_files(Path(src), staging, config)
    return Path(dst)
