"""Round-to-nearest (RTN): quantise every linear of every decoder layer with no calibration.

The baseline AWQ must beat. Only linears inside decoder layers are quantised (embeddings,
norms and lm_head stay float), as AutoAWQ does.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_ref.modules.swap import LinearError, excluded, relative_error, replace_linears
from awq_ref.primitives.quant import QuantizedWeight, QuantSpec, quantize

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


@torch.no_grad()
def rtn(model: nn.Module, spec: QuantSpec, version: str | None, skip: list[str] | None = None,
        on_layer: Callable[[int], None] | None = None) -> list[LinearError]:
    """Quantise ``model`` in place (``version=None``: fake-quantise); return the per-linear error."""
    errors = []
    for i, layer in enumerate(decoder_layers(model)):
        errors += rtn_quantize_layer(layer, spec, version, skip, f"{layer_prefix(model)}.{i}.")
        if on_layer:
            on_layer(i)
    return errors
