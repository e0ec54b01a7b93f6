"""The one loop over decoder layers that quantises: a model folder read one layer at a time, or a
model already in memory, driving a method's ``LayerStep`` (``awq_ref.methods.method``).

Memory is one decoder layer (float32 master, the method's working copy) plus its
activations, plus the largest non-layer tensor (the embedding), never the whole model: a
model is limited by disk, not RAM. The order:

  1. open the folder as a skeleton on ``meta`` (``awq_ref.checkpoint.lazy``) and plan every output
     tensor (``awq_ref.checkpoint.plan``); the staging folder gets config.json, the tokenizer
     files and shard files whose headers are already final (``safetensors_stream``);
  2. read the tensors that run before layer 0 (embeddings; not the output head), let the
     method take layer 0's calibration inputs, write them, drop them;
  3. per layer: read it from the memory-mapped source, move it onto the device, quantise it
     (the method's step; kept layers stay float), move what the checkpoint stores back to the
     CPU and write it at its planned offsets, move the layer back, drop it;
  4. read, write and drop the output head unless it is tied to the input embedding;
  5. the caller adds its metadata; every planned tensor must have been written, then the
     staging folder is renamed into place (``checkpoint.writer``: an interrupted run leaves no --out).

**Device.** ``device`` (default: where the model's weights live) is where each layer is
quantised: the loop moves one decoder layer there at a time and back afterwards, and the step
carries the calibration activations there (``LayerStep.use_device``), so a GPU holds one
layer, its activations and the method's working set (AWQ's grid batches, GPTQ's Hessians),
the way llm-compressor's sequential pipeline onloads layers. Embeddings run where they live
(the first layer's inputs are then moved). On the CPU every move is a no-op: the same bytes.

A model already in memory (``Loaded``: reading and dropping are no-ops) runs the same loop,
with a writer (``quantize --in-memory``: the same files) or without one (``quantize_model``:
the model is quantised in place, for evaluation, goldens and tests). The files are byte for
byte those of the whole-model savers (``checkpoint.awq.save_checkpoint``,
``checkpoint.gptq.save_gptq_checkpoint``) for the same inputs; ``tests/awq_ref/pipeline/test_layer_loop.py``
checks it.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.lazy import LazyModel
from awq_harness.awq_ref.checkpoint.plan import stored_tensor
from awq_harness.awq_ref.checkpoint.safetensors_stream import ShardedWriter
from awq_harness.awq_ref.checkpoint.writer import META_FILE, OutputLayout, streamed_checkpoint, write_json
from awq_harness.awq_ref.methods.method import LayerStep, float_tensors
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix
from awq_harness.awq_ref.modules.swap import LinearError
from awq_harness.awq_ref.primitives.device import CPU, device_of


@dataclass
class Loaded:
    """A model already in memory, seen as a layer source: nothing to read or drop."""

    model: nn.Module
    folder: Path | None = None

    @property
    def layers(self) -> nn.ModuleList:
        return decoder_layers(self.model)

    def layer_name(self, i: int) -> str:
        return f"{layer_prefix(self.model)}.{i}."

    def load(self, names: list[str]) -> None:
        pass

    def unload(self, names: list[str]) -> None:
        pass

    def materialize(self, prefix: str = "") -> None:
        pass

    def release(self, prefix: str) -> None:
        pass


Source = LazyModel | Loaded


def output_head_names(model: nn.Module) -> list[str]:
    head = model.get_output_embeddings()
    for module_name, module in model.named_modules():
        if module is head:
            return [f"{module_name}.{name}" for name, _ in module.named_parameters(recurse=False)]
    return []


def outside_layer_names(model: nn.Module) -> list[str]:
    inside = f"{layer_prefix(model)}."
    return [name for name in model.state_dict(keep_vars=True) if not name.startswith(inside)]


def _write_and_drop(source: Source, names: list[str], writer: ShardedWriter | None,
                    use: Callable[[nn.Module], None] | None = None) -> None:
    """Read ``names``, let ``use`` see the model, write those the plan holds, drop them."""
    source.load(names)
    if use is not None:
        use(source.model)
    if writer is not None:
        state = source.model.state_dict()
        for name in names:
            if writer.wants(name):
                writer.write(name, stored_tensor(state[name].detach()))
    source.unload(names)


def give_back_freed_memory() -> None:
    """Return the freed layer's memory to the system. glibc keeps freed blocks below its
    (adaptive, up to 32 MB) mmap threshold in the heap, so without a trim the resident size
    creeps up by most of a layer per layer."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def on_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the writer takes: host tensors (on the CPU already: the same tensors, no copy)."""
    return {name: t.to(CPU) for name, t in tensors.items()}


def quantize_layers(source: Source, step: LayerStep, writer: ShardedWriter | None = None, kept: list[int] = (),
                    on_layer: Callable[[int], None] | None = None,
                    device: torch.device | None = None) -> list[LinearError]:
    """Steps 2-4 above (no writes without a writer) with each layer on ``device``; returns the
    per-linear errors of the quantised layers."""
    step.use_device(device_of(source.model) if device is None else device)
    head = output_head_names(source.model)
    _write_and_drop(source, [n for n in outside_layer_names(source.model) if n not in head], writer, use=step.begin)
    errors = []
    for i, layer in enumerate(source.layers):
        prefix = source.layer_name(i)
        source.materialize(prefix)
        home = device_of(layer)
        layer.to(step.device)
        if i in kept:
            step.keep(source.model, i, layer)
            tensors = float_tensors(prefix, layer) if writer is not None else {}
        else:
            errors += step.quantize(source.model, i, layer)
            tensors = step.tensors(prefix, layer) if writer is not None else {}
        tensors = on_cpu(tensors)
        layer.to(home)
        if writer is not None:
            writer.write_all(tensors)
        source.release(prefix)
        give_back_freed_memory()
        if on_layer:
            on_layer(i)
    if writer is not None:
        _write_and_drop(source, [n for n in head if writer.wants(n)], writer)
    return errors


def quantize_folder(source: Source, out: Path, step: LayerStep, layout: OutputLayout, kept: list[int] = (),
                    meta_for: Callable[[list[LinearError]], dict] | None = None, overwrite: bool = False,
                    on_layer: Callable[[int], None] | None = None,
                    device: torch.device | None = None) -> list[LinearError]:
    """The whole checkpoint from ``source`` (its ``folder``: side files) to ``out``, each layer
    quantised on ``device``; ``meta_for(errors)`` becomes awq_harness.json."""
    with streamed_checkpoint(out, layout, source.folder, overwrite) as (writer, staging):
        errors = quantize_layers(source, step, writer, kept, on_layer, device)
        if meta_for is not None:
            write_json(staging / META_FILE, meta_for(errors))
    return errors
