"""The layout and layer step of a compressed-tensors checkpoint from any method and keep plan: what
``quantize --format compressed-tensors`` runs, and what the compressed-tensors goldens are built with.

Float-kept modules (``--keep-as float``) are kept as in the AutoAWQ path; an 8-bit plan
(``--keep-as 8bit``) puts its modules in a second config group (``pipeline.keep_ct``). A GPTQ
act-order run is named as compressed-tensors names it: ``actorder: "group"`` (permuted groups,
``weight_g_idx`` stored) or, with static groups, ``"weight"`` (quantised in act-order, groups
contiguous, no ``weight_g_idx``).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from awq_harness.awq_ref.checkpoint import layouts
from awq_harness.awq_ref.checkpoint.writer import OutputLayout
from awq_harness.awq_ref.formats import compressed_tensors
from awq_harness.awq_ref.methods.method import LayerStep, Method
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.model.arch import layer_prefix
from awq_harness.awq_ref.pipeline.keep import KeepPlan
from awq_harness.awq_ref.pipeline.keep_ct import CompressedTensorsStep, eight_bit_spec
from awq_harness.awq_ref.pipeline.keep_step import KeepLinearsStep
from awq_harness.awq_ref.pipeline.quantize import method_step


@dataclass(frozen=True)
class CtRun:
    layout: OutputLayout
    step: LayerStep
    float_layers: list[int]  # decoder layers written in float


def method_version(method: Method, fmt: str) -> str:
    """The layout the method's step writes: ``fmt`` itself, or for compressed-tensors the method's
    own first format (re-packed by ``pipeline.keep_ct``)."""
    return method.formats[0] if fmt == compressed_tensors.NAME and method.formats else fmt


def actorder(method: Method, request: QuantizeRequest) -> str | None:
    if method.name != "gptq" or not request.gptq.act_order:
        return None
    return "weight" if request.gptq.static_groups else "group"


def compressed_tensors_run(model: nn.Module, method: Method, request: QuantizeRequest, calibration,
                           keep: KeepPlan) -> CtRun:
    """``calibration``: token ids, or the tokenizer to draw them with (``pipeline.quantize.method_step``)."""
    prefix = layer_prefix(model)
    eight = keep.kept_linears(model) if keep.keep_as == "8bit" else []
    floats = KeepPlan() if eight else keep
    order = actorder(method, request)
    layout = layouts.output_layout(model, layouts.LayoutRequest(
        compressed_tensors.NAME, request.spec, floats.not_converted(prefix), None, tuple(eight),
        eight_bit_spec(request.spec), order))
    inner = KeepLinearsStep(method_step(method, request, calibration), method, floats.linears_by_layer(prefix))
    step = CompressedTensorsStep(inner, request.version, request.spec, KeepPlan([], eight).linears_by_layer(prefix),
                                 "gptq" if request.version == "gptq" else None, order == "group")
    return CtRun(layout, step, floats.layers)
