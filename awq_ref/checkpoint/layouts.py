"""The checkpoint layout of each format we write, by format name (``QuantizeRequest.version``).

A writable format is its module in ``awq_ref.formats`` (tensors, shapes, the layout's part of
``quantization_config``) and one entry in ``LAYOUTS``: a builder from the model's skeleton and a
``LayoutRequest`` to the ``OutputLayout`` the one writer (``checkpoint.writer``) lays out.

A ``LayoutRequest`` names the format, the spec, the linears left float (AutoAWQ's
``modules_to_not_convert``; the GPTQ layout has none) and, when the writing method records
its own settings there, the whole ``quantization_config`` it built (GPTQ: the layout's keys
with its act-order options, and its search settings); else the layout's own is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from awq_harness.awq_ref.checkpoint.awq import AwqConfig
from awq_harness.awq_ref.checkpoint.writer import OutputLayout, awq_output, gptq_output
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.primitives.quant import QuantSpec


@dataclass(frozen=True)
class LayoutRequest:
    version: str
    spec: QuantSpec
    not_converted: list[str] | None = field(default=None)
    quantization_config: dict | None = None


def awq_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    qcfg = AwqConfig(request.spec, request.version, request.not_converted)
    return awq_output(model, qcfg, quantization_config=request.quantization_config)


def gptq_checkpoint_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    if request.not_converted:
        raise HarnessError(f"the GPTQ layout keeps no linear in float, got {request.not_converted}")
    config = request.quantization_config or gptq_layout.quantization_config(request.spec)
    return gptq_output(model, request.spec, config)


LAYOUTS: dict[str, Callable[[nn.Module, LayoutRequest], OutputLayout]] = {
    "gemm": awq_layout,
    "gemv": awq_layout,
    "gptq": gptq_checkpoint_layout,
}


def output_layout(model: nn.Module, request: LayoutRequest) -> OutputLayout:
    if request.version not in LAYOUTS:
        raise HarnessError(f"no checkpoint layout for format {request.version!r}; written: {', '.join(LAYOUTS)}")
    return LAYOUTS[request.version](model, request)
