"""Round-to-nearest (RTN): quantise every linear of every decoder layer with no calibration.

The baseline AWQ must beat. Only linears inside decoder layers are quantised (embeddings,
norms and lm_head stay float), as AutoAWQ does.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from awq_harness.awq_ref.methods.method import LayerStep, Method
from awq_harness.awq_ref.model.arch import layer_prefix, linears_in
from awq_harness.awq_ref.modules.swap import LinearError, excluded, relative_error, replace_linears
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec, quantize

STORED_SCALE_DTYPE = torch.float16  # what every AWQ layout stores


def rtn_layer(layer: nn.Module, spec: QuantSpec, skip: list[str] | None = None,
              prefix: str = "") -> dict[str, QuantizedWeight]:
    return {
        name: quantize(linear.weight.detach().float(), spec, scale_dtype=STORED_SCALE_DTYPE)
        for name, linear in linears_in(layer).items()
        if not excluded(f"{prefix}{name}", skip)
    }


@torch.no_grad()
def rtn_quantize_layer(layer: nn.Module, spec: QuantSpec, version: str | None, skip: list[str] | None = None,
                       prefix: str = "") -> list[LinearError]:
    """Quantise one decoder layer in place (``version=None``: fake-quantise); its per-linear error."""
    quantized = rtn_layer(layer, spec, skip, prefix)
    errors = []
    for name, qw in quantized.items():
        w = layer.get_submodule(name).weight.detach()
        errors.append(LinearError(prefix + name, relative_error(w, qw.dequantize())))
    replace_linears(layer, quantized, version)
    return errors


class RtnStep(LayerStep):
    """Each layer on its own; kept layers and linears need nothing carried, and RTN folds nothing,
    so a kept linear's float copy is the float layer itself."""

    def __init__(self, request):
        self.request = request

    def quantize(self, model, index, layer):
        return rtn_quantize_layer(layer, self.request.spec, self.request.version,
                                  self.request.modules_to_not_convert, f"{layer_prefix(model)}.{index}.")

    def float_copy(self, model, index, layer):
        return copy.deepcopy(layer)


RTN = Method("rtn", lambda request, calib_ids: RtnStep(request), keeps_float=True, skips_modules=True)
