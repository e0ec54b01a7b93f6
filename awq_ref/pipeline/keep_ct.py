"""``quantize --format compressed-tensors``: the method's own layer step, its tensors re-packed as
compressed-tensors ``pack-quantized``, and the modules an 8-bit plan keeps at 8 bits.

The method quantises each layer as it always does, into its own layout (RTN and AWQ: AutoAWQ
GEMM; GPTQ: GPTQ's, act-order ``g_idx`` included); its codes, scales and zeros are decoded from
those tensors and packed again in the compressed-tensors layout, so the numbers are exactly the
method's. A GPTQ act-order ``g_idx`` becomes ``weight_g_idx`` (the codes stay in column order)
when the groups are permuted (``actorder: "group"``); with static groups they are contiguous
(``actorder: "weight"``) and no ``weight_g_idx`` is written.

The kept modules of an 8-bit plan (``plan --keep-as 8bit``) are round-to-nearest quantised at 8
bits, with the 4-bit scheme's group size, symmetric (``eight_bit_spec``), and fp16 scales,
which is what ``plan --keep-as 8bit`` measured. They are quantised from the float weights the
method would keep in float: a whole kept layer is the float layer (``LayerStep.keep`` carries
the method's state past it), a kept linear inside a quantised layer is the method's float copy
in its basis (``LayerStep.float_copy``: AWQ folds the layer's scales in). At 8 bits the
round-to-nearest error is ~16x below the 4-bit one, so a calibrated search has little to add.
"""
from __future__ import annotations

import torch
from torch import nn

from awq_harness.awq_ref import formats
from awq_harness.awq_ref.formats import compressed_tensors as ct
from awq_harness.awq_ref.methods.method import LayerStep, WrappedStep, float_tensors
from awq_harness.awq_ref.methods.rtn import STORED_SCALE_DTYPE
from awq_harness.awq_ref.model.arch import layer_prefix, linears_in
from awq_harness.awq_ref.modules.swap import LinearError, relative_error
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec, quantize

EIGHT_BITS = 8


def eight_bit_spec(four_bit: QuantSpec) -> QuantSpec:
    """The 8-bit scheme beside a 4-bit one: the same group size, symmetric (no zero point).

    vLLM's GPU kernels take 8-bit weights as uint8b128 (codes biased by 128, no zero point):
    Marlin from capability 7.5, Machete on sm90. An 8-bit scheme with zero points (uint8) only
    Machete takes, so such a checkpoint would not load on an A100. llm-compressor's W8A16 is
    symmetric for the same reason; at 8 bits a zero point buys little (256 levels over the
    group's largest magnitude instead of over its range)."""
    return QuantSpec(EIGHT_BITS, four_bit.group_size, zero_point=False)


def _modules(tensors: dict[str, torch.Tensor], packed: str) -> list[str]:
    return sorted(name[: -len(packed) - 1] for name in tensors if name.endswith("." + packed))


def repacked(tensors: dict[str, torch.Tensor], layout, spec: QuantSpec, checkpoint_format: str | None = None,
             g_idx: bool = False) -> dict[str, torch.Tensor]:
    """A layer's tensors in ``layout`` (a ``formats`` module) with every quantised linear's
    tensors replaced by compressed-tensors ones, the other tensors as they are; ``g_idx``: each
    linear's column groups (GPTQ's ``g_idx``) written as ``weight_g_idx``."""
    out = dict(tensors)
    for module in _modules(tensors, layout.PACKED):
        own = {s: out.pop(f"{module}.{s}") for s in layout.TENSOR_NAMES if f"{module}.{s}" in out}
        qw = layout.decode(own, spec, checkpoint_format)
        out.update({f"{module}.{s}": t for s, t in ct.pack(qw).items()})
        if g_idx:
            out[f"{module}.weight_g_idx"] = own["g_idx"].to(torch.int32).contiguous()
    return out


class CompressedTensorsStep(WrappedStep):
    """Wraps the method's step (writing ``version``); ``eight_bit``: per layer index, the linears
    (relative to the layer) stored at 8 bits."""

    def __init__(self, inner: LayerStep, version: str, spec: QuantSpec, eight_bit: dict[int, list[str]],
                 checkpoint_format: str | None = None, g_idx: bool = False):
        super().__init__(inner)
        self.layout, self.spec = formats.get(version), spec
        self.eight_bit, self.checkpoint_format, self.g_idx = eight_bit, checkpoint_format, g_idx
        self.pending: dict[str, QuantizedWeight] = {}  # full names -> 8-bit codes, until the layer is written
        self.whole: set[str] = set()  # prefixes of layers kept float, to be written all at 8 bits

    def quantize(self, model, index, layer):
        names = self.eight_bit.get(index, [])
        prefix = f"{layer_prefix(model)}.{index}."
        if names and set(names) == set(linears_in(layer)):
            self.inner.keep(model, index, layer)  # the whole layer: float, the method's state carried past it
            self.whole.add(prefix)
            return self._eight_bit(layer, names, prefix)
        folded = self.inner.float_copy(model, index, layer) if names else None
        errors = self.inner.quantize(model, index, layer)
        if not names:
            return errors
        kept = {prefix + name for name in names}
        return [e for e in errors if e.name not in kept] + self._eight_bit(folded, names, prefix)

    @torch.no_grad()
    def _eight_bit(self, source: nn.Module, names: list[str], prefix: str) -> list[LinearError]:
        errors, spec = [], eight_bit_spec(self.spec)
        for name in names:
            w = source.get_submodule(name).weight.detach().float()
            qw = quantize(w, spec, scale_dtype=STORED_SCALE_DTYPE)
            self.pending[prefix + name] = qw
            errors.append(LinearError(prefix + name, relative_error(w, qw.dequantize())))
        return errors

    def tensors(self, prefix, layer):
        mine = {name: qw for name, qw in self.pending.items() if name.startswith(prefix)}
        if prefix in self.whole:
            self.whole.discard(prefix)
            tensors = float_tensors(prefix, layer)  # a whole 8-bit layer: kept float until packed here
        else:
            tensors = self.inner.tensors(prefix, layer)
        for module, qw in mine.items():
            del self.pending[module]
            for suffix in (*self.layout.TENSOR_NAMES, "weight"):
                tensors.pop(f"{module}.{suffix}", None)
            tensors.update({f"{module}.{s}": t for s, t in ct.pack(qw).items()})
        return repacked(tensors, self.layout, self.spec, self.checkpoint_format, self.g_idx)
