"""The checkpoint layout of each format we write, by format name (``QuantizeRequest.version``).

A writable format is its module in ``awq_ref.formats`` (tensors, shapes, the layout's part of
``quantization_config``) and one entry in ``LAYOUTS``: a builder from the model's skeleton and a
``LayoutRequest`` to the ``OutputLayout`` the one writer (``checkpoint.writer``) lays out.

A ``LayoutRequest`` names the format, the spec, the linears left float (AutoAWQ's
``modules_to_not_convert``; the GPTQ layout has none) and, when the writing method records
its own settings there, the whole ``quantization_config`` it built (GPTQ: the layout's keys
with its act-order options, and its search settings); else the layout's own is written.

compressed-tensors (``ct_layout``) has one config group per code width: the spec's, and
``wide_spec`` for the linears in ``wide`` (the kept modules of an 8-bit plan). With one
group its targets are ``["Linear"]`` (what llm-compressor writes); with two, each group names
its linears exactly, so every quantised linear is targeted once. Float linears are in
``ignore`` beside ``lm_head``. ``actorder``: the spec's group has it, and with "group" its
linears store ``weight_g_idx`` (``actorder: "group"``: act-order permuted the groups) or not
(``"weight"``: quantised in act-order, groups left contiguous); the wide group has none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from awq_harness.awq_ref.checkpoint.awq import AwqConfig
from awq_harness.awq_ref.checkpoint.plan import decoder_linears
from awq_harness.awq_ref.checkpoint.writer import OutputLayout, awq_output, ct_output, gptq_output
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import compressed_tensors as ct_format
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.modules.swap import excluded
from awq_harness.awq_ref.primitives.quant import QuantSpec


@dataclass(frozen=True)
class LayoutRequest:
    version: str
    spec: QuantSpec
    not_converted: list[str] | None = field(default=None)
    quantization_config: dict | None = None
    wide: tuple[str, ...] = ()  # compressed-tensors: linears (full names) quantised with wide_spec
    wide_spec: QuantSpec | None = None
    actorder: str | None = None  # compressed-tensors weights.actorder of the spec's group: "group" | "weight"


def awq_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    qcfg = AwqConfig(request.spec, request.version, request.not_converted)
    return awq_output(model, qcfg, quantization_config=request.quantization_config)


def gptq_checkpoint_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    if request.not_converted:
        raise HarnessError(f"the GPTQ layout keeps no linear in float, got {request.not_converted}")
    config = request.quantization_config or gptq_layout.quantization_config(request.spec)
    return gptq_output(model, request.spec, config)


def ct_specs(model: nn.Module, request: LayoutRequest) -> dict[str, QuantSpec]:
    """Each quantised decoder linear's scheme (the float ones, ``not_converted``, left out)."""
    wide = set(request.wide)
    unknown = sorted(wide - set(decoder_linears(model)))
    if unknown:
        raise HarnessError(f"not decoder linears of the model: {unknown[:3]}")
    if wide and request.wide_spec is None:
        raise HarnessError("wide linears given without their scheme")
    return {name: request.wide_spec if name in wide else request.spec for name in decoder_linears(model)
            if not excluded(name, request.not_converted)}


def ct_config(model: nn.Module, specs: dict[str, QuantSpec], request: LayoutRequest) -> dict:
    wide = sorted(set(request.wide))
    narrow = sorted(set(specs) - set(wide))
    floats = sorted(set(decoder_linears(model)) - set(specs))
    schemes = [(request.spec, narrow if wide else ["Linear"], request.actorder)]
    schemes += [(request.wide_spec, wide)] if wide else []
    return ct_format.mixed_quantization_config(schemes, ["lm_head"] + floats)


def ct_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    specs = ct_specs(model, request)
    g_idx = frozenset(set(specs) - set(request.wide)) if request.actorder == "group" else frozenset()
    return ct_output(model, specs, ct_config(model, specs, request), g_idx)


LAYOUTS: dict[str, Callable[[nn.Module, LayoutRequest], OutputLayout]] = {
    "gemm": awq_layout,
    "gemv": awq_layout,
    "gptq": gptq_checkpoint_layout,
    ct_format.NAME: ct_layout,
}


def output_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    if request.version not in LAYOUTS:
        raise HarnessError(f"no checkpoint layout for format {request.version!r}; written: {', '.join(LAYOUTS)}")
    return LAYOUTS[request.version](model, request)
