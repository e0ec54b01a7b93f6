"""Conversion between AutoAWQ GEMM and compressed-tensors pack-quantized, and between GPTQ v1 and
v2: a valid target or nothing.

Both store the same unsigned codes, zeros and scales: GEMM packs codes
along N with AWQ's interleave, compressed-tensors along K in natural order with zeros packed
along N, and scales transposed. We unpack to (q, z, s) and repack, so qweight, qzeros and
scales come back bit-identical after GEMM -> compressed-tensors -> GEMM, and the dequantised
weights are bit-identical in both directions. Every other tensor is copied byte for byte,
except an output head tied to the input embedding, which no checkpoint we write holds.

GPTQ ``checkpoint_format: "gptq"`` (v1) stores each zero minus one, ``"gptq_v2"`` the zero
itself (``formats.gptq``). v1 -> v2 is always lossless; v2 -> v1 only where no zero is 0 (v1
cannot store it), else it is refused before anything is written. Codes, scales and ``g_idx``
(act-order included) are kept; the rest of ``quantization_config`` is the source's. GPTQ
numbers are converted only to GPTQ's layout, as ``quantize`` writes them.

Scales the target layout cannot hold in the source's dtype (float32 ones, which llm-compressor
writes when it calibrated in float32, in the fp16/bf16 GEMM layout) are rounded to fp16 and the
largest relative change of a dequantised weight is reported; a scale fp16 cannot hold is refused
before anything is written (``conformance.scale_rounding``). The result is verified in its
staging folder and only a folder that verifies is moved into place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from awq_harness.awq_ref import formats
from awq_harness.awq_ref.checkpoint.atomic import atomic_directory
from awq_harness.awq_ref.checkpoint.safetensors_stream import TensorSpec
from awq_harness.awq_ref.checkpoint.writer import (
    DEFAULT_MAX_SHARD_BYTES,
    STORED_DTYPE,
    OutputLayout,
    checkpoint_config,
    streamed_checkpoint,
    tied_head_keys,
    without_keys,
)
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import awq_gemm, compressed_tensors, gptq
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec
from awq_harness.conformance import decode
from awq_harness.conformance.declared import Declared
from awq_harness.conformance.findings import Report
from awq_harness.conformance.reader import TORCH_DTYPES
from awq_harness.conformance.runner import load_layers, verify
from awq_harness.conformance.scale_rounding import Rounding, check_fits, relative_change, target_scale_dtype
from awq_harness.conformance.structure import Layer

GPTQ_V2 = "gptq_v2"
AWQ_FAMILY = (compressed_tensors.NAME, awq_gemm.NAME)  # the same AWQ numbers in two layouts
GPTQ_FAMILY = (gptq.NAME, GPTQ_V2)  # GPTQ's layout, v1 and v2 zero conventions
TARGETS = AWQ_FAMILY + GPTQ_FAMILY  # as --to takes them
CT_VERSION = "0.19.0"  # the compressed-tensors release whose config we write


def _declared_spec(decl: Declared) -> QuantSpec:
    return QuantSpec(4, decl.group_size, decl.zero_point)


def ct_config(decl: Declared) -> dict:
    """The layout's keys from ``formats.compressed_tensors``; the release, what stays float, and the
    empty schemes llm-compressor writes beside them."""
    return {**compressed_tensors.quantization_config(_declared_spec(decl)), "version": CT_VERSION,
            "ignore": ["lm_head"] + [f"re:.*{m}.*" for m in decl.skip],
            "kv_cache_scheme": None, "sparsity_config": {}, "transform_config": {}}


def _substring(entry: str) -> str:
    if entry.startswith("re:.*") and entry.endswith(".*") and not any(c in entry[5:-2] for c in "\\[](){}*+?|^$"):
        return entry[5:-2]
    if not entry.startswith("re:"):
        return entry
    raise HarnessError(f"ignore pattern {entry!r} has no AutoAWQ modules_to_not_convert equivalent")


def awq_config(decl: Declared) -> dict:
    """The GEMM layout's keys from ``formats.awq_gemm``, and the linears left float."""
    skip = [_substring(e) for e in decl.skip if e != "lm_head"]
    return {**awq_gemm.quantization_config(_declared_spec(decl)), "modules_to_not_convert": skip or None}


def _layout(target: str):
    return formats.get(gptq.NAME if target in GPTQ_FAMILY else target)


def _packed(qw: QuantizedWeight, target: str, scale_dtype: torch.dtype) -> dict[str, torch.Tensor]:
    extra = {"checkpoint_format": target} if target in GPTQ_FAMILY else {}
    return _layout(target).pack(qw, scale_dtype=scale_dtype, **extra)


def _source_scale_dtype(layer: Layer) -> torch.dtype:
    return TORCH_DTYPES[layer.infos[layer.layout.SCALES].dtype]


def _scale_dtype(layer: Layer, target: str) -> torch.dtype:
    """The scales' dtype in the target: the source's where the target layout allows it, else fp16."""
    return target_scale_dtype(_source_scale_dtype(layer), _layout(target))


def _convert_layer(layer: Layer, tensors: dict[str, torch.Tensor], target: str,
                   decl: Declared, rounding: Rounding) -> dict[str, torch.Tensor]:
    # The declared zero point decides whether compressed-tensors gets weight_zero_point: a
    # symmetric AWQ file stores the implicit zero 8 in qzeros (the gate checked they are 8).
    qw = replace(decode.full(layer, tensors, v1=decl.gptq_v1), spec=QuantSpec(4, layer.group_width, decl.zero_point))
    dtype = _scale_dtype(layer, target)
    check_fits(qw.scales, dtype, f"{layer.prefix}.{layer.layout.SCALES}")
    rounding.add(layer.prefix, qw.scales.dtype, dtype, relative_change(qw, dtype))
    out = _packed(qw, target, dtype)
    if "g_idx" in tensors and "g_idx" in out:
        out["g_idx"] = tensors["g_idx"]  # act-order's column groups, as the source has them
    if "bias" in tensors:
        out["bias"] = tensors["bias"]
    return {f"{layer.prefix}.{s}": t for s, t in out.items()}


def _layer_plan(layer: Layer, target: str, zero_point: bool) -> dict[str, TensorSpec]:
    """The converted layer's tensors, shapes and dtypes: the target's packer run on blank codes
    of the layer's size, zeros 1 so GPTQ v1 can store them (the layout depends on the sizes only)."""
    n, k, groups = layer.dims.n, layer.dims.k, layer.dims.k // layer.group_width
    blank = QuantizedWeight(torch.zeros(n, k, dtype=torch.int32), torch.ones(n, groups),
                            torch.ones(n, groups, dtype=torch.int32), QuantSpec(4, layer.group_width, zero_point))
    plan = {s: TensorSpec.of(t) for s, t in _packed(blank, target, _scale_dtype(layer, target)).items()}
    if "bias" in layer.infos:
        plan["bias"] = _info_spec(layer.infos["bias"])
    return {f"{layer.prefix}.{s}": spec for s, spec in plan.items()}


def _info_spec(info) -> TensorSpec:
    return TensorSpec(tuple(info.shape), TORCH_DTYPES[info.dtype])


def verified_source(src: str) -> Report:
    """The source's report; a source that does not verify is refused before anything is written."""
    report = verify(src)
    errors = [f for f in report.findings if f.severity == "error"]
    if not report.readable or errors:
        first = errors[0].line() if errors else "unreadable"
        raise HarnessError(f"{src} does not verify ({len(errors)} errors; first: {first}); fix it before converting")
    return report


def _check_pair(src: str, fmt: str | None, decl: Declared, target: str) -> None:
    source = GPTQ_V2 if fmt == gptq.NAME and not decl.gptq_v1 else fmt
    family = AWQ_FAMILY if source in AWQ_FAMILY else GPTQ_FAMILY if source in GPTQ_FAMILY else None
    if family is None:
        raise HarnessError(f"{src} is {fmt}; convert reads AutoAWQ GEMM, compressed-tensors or GPTQ")
    if source == target:
        raise HarnessError(f"{src} is already {source}")
    if target not in family:
        raise HarnessError(f"{src} is {source}: it converts to {' or '.join(f for f in family if f != source)}, "
                           f"not {target}")


def _check_one_width(src: str, layers: list[Layer], reader, target: str) -> None:
    """The AutoAWQ and GPTQ layouts store one 4-bit scheme in column order: refuse, before writing,
    a source with wider codes (a mixed 4/8-bit compressed-tensors checkpoint) or act-order groups."""
    wide = [layer.prefix for layer in layers if layer.bits != 4]
    if wide:
        raise HarnessError(f"{src} has {len(wide)} linears at {max(layer.bits for layer in layers)} bits "
                           f"(e.g. {wide[0]}); {target} stores one bit width, 4: nothing written")
    for layer in layers:
        info = layer.infos.get("weight_g_idx")
        if info is not None and decode.group_index(layer, {"weight_g_idx": reader.get(info)}) is not None:
            raise HarnessError(f"{layer.prefix}.weight_g_idx: act-order column groups, which {target} cannot store: "
                               "nothing written")


def _check_zeros_fit(layers: list[Layer], reader, target: str, decl: Declared) -> None:
    """GPTQ v1 stores z - 1: refuse, before writing, a source with a zero point of 0."""
    if target != gptq.NAME:
        return
    for layer in layers:
        _, zeros = decode.scales_zeros(layer, {s: reader.get(i) for s, i in layer.infos.items()
                                               if s in (layer.layout.SCALES, layer.layout.ZEROS)}, decl.gptq_v1)
        if zeros.numel() and int(zeros.min()) < 1:
            raise HarnessError(f"{layer.prefix}.{layer.layout.ZEROS}: a zero point of 0 cannot be stored in GPTQ v1 "
                               "(it stores z - 1); nothing written")


def _copied(folder, layers: list[Layer]) -> dict:
    """The source's tensors outside the quantised layers (embeddings, norms, head): copied as they are."""
    owned = {info.name for layer in layers for info in layer.infos.values()}
    return {name: info for name, info in sorted(folder.tensors.items()) if name not in owned}


def _plan(folder, decl: Declared, layers: list[Layer], target: str) -> dict[str, TensorSpec]:
    plan = {}
    for layer in layers:
        plan.update(_layer_plan(layer, target, decl.zero_point))
    plan.update({name: _info_spec(info) for name, info in _copied(folder, layers).items()})
    return plan


def _check_scales_fit(layers: list[Layer], reader, target: str) -> None:
    """Every layer's scales survive the target's scale dtype (read before anything is written)."""
    for layer in layers:
        dtype = _scale_dtype(layer, target)
        if dtype != _source_scale_dtype(layer):
            check_fits(reader.get(layer.infos[layer.layout.SCALES]), dtype, f"{layer.prefix}.{layer.layout.SCALES}")


def _converted_tensors(folder, decl: Declared, layers: list[Layer], reader, target: str, rounding: Rounding):
    """One layer's converted tensors at a time, then the copied ones one by one."""
    for layer in layers:
        tensors = {s: reader.get(i) for s, i in layer.infos.items()}
        yield _convert_layer(layer, tensors, target, decl, rounding)
    for name, info in _copied(folder, layers).items():
        yield {name: reader.get(info)}


def _stored_dtype(config: dict, plan: dict[str, TensorSpec]) -> str:
    """The dtype config.json declares: the source's, else that of its first float tensor."""
    declared = config.get("dtype") or config.get("torch_dtype")
    if declared:
        return str(declared)
    floats = [spec.dtype for spec in plan.values() if spec.dtype.is_floating_point]
    return str(floats[0]).removeprefix("torch.") if floats else STORED_DTYPE


def gptq_config(source: dict, target: str) -> dict:
    """The source's GPTQ quantization_config (method settings, act-order) with the target's zero convention."""
    out = {**source, "checkpoint_format": target}
    if "format" in source:
        out["format"] = target
    return out


def _quantization_config(config: dict, decl: Declared, target: str) -> dict:
    if target in GPTQ_FAMILY:
        return gptq_config(config["quantization_config"], target)
    return ct_config(decl) if target == compressed_tensors.NAME else awq_config(decl)


def _output(folder, decl: Declared, layers: list[Layer], target: str, max_shard_bytes: int) -> OutputLayout:
    config = dict(folder.config)
    quantization = _quantization_config(config, decl, target)
    plan = _plan(folder, decl, layers, target)
    tied = tied_head_keys(bool(config.get("tie_word_embeddings", False)))
    return OutputLayout(without_keys(plan, tied), checkpoint_config(config, quantization, _stored_dtype(config, plan)),
                        max_shard_bytes)


@dataclass
class Conversion:
    """A converted folder, what rounding its scales did, and its verification report."""
    path: Path
    rounding: Rounding = field(default_factory=Rounding)
    report: Report | None = None

    def to_json(self) -> dict:
        return {"path": str(self.path), "format": self.report.format if self.report else None,
                "verifies": bool(self.report and self.report.conforms), "scales": self.rounding.to_json()}


def _move_up(inner: Path, staging: Path) -> None:
    for entry in sorted(os.listdir(inner)):
        os.rename(inner / entry, staging / entry)
    inner.rmdir()


def _refuse_unless_verifies(report: Report, dst: Path, target: str) -> None:
    if report.conforms:
        return
    errors = [f for f in report.findings if f.severity == "error"]
    first = errors[0].line() if errors else "no error finding"
    raise HarnessError(f"{dst}: the converted {target} folder does not verify ({first}); nothing written")


def convert_checked(src: str | Path, dst: str | Path, target: str, overwrite: bool = False,
                    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Conversion:
    """Convert ``src`` to ``target`` at ``dst``, one layer in memory at a time, through the one
    checkpoint writer (``awq_ref.checkpoint.writer``: config, side files, shards), verify the
    result in its staging folder and only then move it into place: a valid target or nothing."""
    if target not in TARGETS:
        raise HarnessError(f"--to {target!r}: choose from {sorted(TARGETS)}")
    src = str(src)
    source = verified_source(src)
    folder, decl, layers, reader, _ = load_layers(src)
    _check_pair(src, source.format, decl, target)
    _check_one_width(src, layers, reader, target)
    _check_scales_fit(layers, reader, target)
    _check_zeros_fit(layers, reader, target, decl)
    layout = _output(folder, decl, layers, target, max_shard_bytes)
    result = Conversion(Path(dst))
    with atomic_directory(Path(dst), replace=overwrite) as staging:
        inner = staging / "converted"
        with streamed_checkpoint(inner, layout, Path(src)) as (writer, _):
            for group in _converted_tensors(folder, decl, layers, reader, target, result.rounding):
                writer.write_all({name: t for name, t in group.items() if writer.wants(name)})
        result.report = verify(inner)
        _refuse_unless_verifies(result.report, Path(dst), target)
        _move_up(inner, staging)
    result.report.checkpoint = str(dst)
    return result


def convert(src: str | Path, dst: str | Path, target: str, overwrite: bool = False,
            max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """``convert_checked``'s folder."""
    return convert_checked(src, dst, target, overwrite, max_shard_bytes).path
