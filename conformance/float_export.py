"""``awq-harness convert SRC DST --to fp16|bf16``: a plain float checkpoint of a quantised one.

LoRA adapters are merged into float weights, so an AWQ checkpoint is dequantised first. Each
quantised linear's weight becomes w_hat = (q - z) * s, computed in float32 (exact: a 4-bit
code difference times a 16-bit scale fits float32's mantissa) and rounded once to the target
dtype, so the file holds exactly the dequantised weights in that dtype. Every other tensor
(embeddings, norms, head, biases) is cast to the target dtype. config.json has no
``quantization_config``, so transformers loads the folder as an ordinary model. The source
must verify; one layer is in memory at a time, and the folder is written atomically through
the one checkpoint writer (``awq_ref.checkpoint.writer``).
"""
from __future__ import annotations

from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.safetensors_stream import TensorSpec
from awq_harness.awq_ref.checkpoint.writer import (
    DEFAULT_MAX_SHARD_BYTES,
    OutputLayout,
    checkpoint_config,
    streamed_checkpoint,
    tied_head_keys,
    without_keys,
)
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.conformance import decode
from awq_harness.conformance.convert import verified_source
from awq_harness.conformance.reader import TORCH_DTYPES
from awq_harness.conformance.runner import load_layers
from awq_harness.conformance.structure import Layer

FLOAT_TARGETS = {"fp16": torch.float16, "bf16": torch.bfloat16}  # --to name -> dtype
EXACT_TARGET = {"fp32": torch.float32}  # not a --to choice: the exact w_hat, for the functional check


def dequantised_weight(layer: Layer, tensors: dict[str, torch.Tensor], v1: bool, dtype: torch.dtype) -> torch.Tensor:
    return decode.weight(layer, tensors, v1).to(dtype)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def _plan(folder, layers: list[Layer], dtype: torch.dtype) -> dict[str, TensorSpec]:
    owned = {info.name for layer in layers for info in layer.infos.values()}
    plan = {}
    for layer in layers:
        plan[f"{layer.prefix}.weight"] = TensorSpec((layer.dims.n, layer.dims.k), dtype)
        if "bias" in layer.infos:
            plan[f"{layer.prefix}.bias"] = TensorSpec(tuple(layer.infos["bias"].shape), dtype)
    for name, info in folder.tensors.items():
        if name not in owned:
            stored = TORCH_DTYPES[info.dtype]
            plan[name] = TensorSpec(tuple(info.shape), dtype if stored.is_floating_point else stored)
    return plan


def _tensors(folder, layers: list[Layer], reader, v1: bool, dtype: torch.dtype):
    """One layer's float tensors at a time, then the other tensors one by one."""
    owned = set()
    for layer in layers:
        t = {s: reader.get(i) for s, i in layer.infos.items()}
        owned |= {i.name for i in layer.infos.values()}
        out = {f"{layer.prefix}.weight": dequantised_weight(layer, t, v1, dtype)}
        if "bias" in t:
            out[f"{layer.prefix}.bias"] = _cast(t["bias"], dtype)
        yield out
    for name, info in sorted(folder.tensors.items()):
        if name not in owned:
            yield {name: _cast(reader.get(info), dtype)}


def _gate(src: str) -> None:
    report = verified_source(src)
    if not report.format:
        raise HarnessError(f"{src} holds no quantised layers; it is float already")


def export_float(src: str | Path, dst: str | Path, to: str, overwrite: bool = False,
                 max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    targets = FLOAT_TARGETS | EXACT_TARGET
    if to not in targets:
        raise HarnessError(f"--to {to!r}: choose from {sorted(FLOAT_TARGETS)}")
    dtype, src = targets[to], str(src)
    _gate(src)
    folder, decl, layers, reader, _ = load_layers(src)
    config = checkpoint_config(dict(folder.config), {}, str(dtype).removeprefix("torch."))
    del config["quantization_config"]
    tied = tied_head_keys(bool(config.get("tie_word_embeddings", False)))
    layout = OutputLayout(without_keys(_plan(folder, layers, dtype), tied), config, max_shard_bytes)
    with streamed_checkpoint(Path(dst), layout, Path(src), overwrite) as (writer, _):
        for group in _tensors(folder, layers, reader, decl.gptq_v1, dtype):
            writer.write_all({name: t for name, t in group.items() if writer.wants(name)})
    return Path(dst)
