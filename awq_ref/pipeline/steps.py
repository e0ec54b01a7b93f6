"""Each method's work on one decoder layer, for quantising a model one layer at a time.

A step sees the model only through its skeleton (``awq_ref.checkpoint.lazy``: decoder layers on the
``meta`` device except the one being worked on) and keeps between layers only what the
method carries forward: the calibrated methods' hidden states and layer kwargs. The math is
the in-memory methods' own (``rtn_quantize_layer``, ``awq_layer``, ``gptq_layer``), called
in the same order on the same inputs, so the results are the same bytes.

    begin(model)          the non-layer tensors that precede layer 0 are loaded: take the
                          calibration inputs of layer 0 (calibrated methods)
    quantize(model, i, L) quantise layer i in place; return its per-linear errors
    keep(model, i, L)     layer i stays float: only advance the hidden states as the
                          in-memory path does (AWQ: the float output, so it equals running
                          AWQ on the layer and restoring the float weights afterwards)
    tensors(prefix, L)    what the checkpoint stores for the layer (names from the root)
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from awq_ref.checkpoint.gptq import gptq_tensors
from awq_ref.checkpoint.plan import stored_tensor
from awq_ref.methods.awq.driver import AwqResult, awq_layer
from awq_ref.methods.gptq import GptqResult, gptq_layer
from awq_ref.methods.rtn import rtn_quantize_layer
from awq_ref.model.arch import layer_prefix
from awq_ref.model.walk import first_layer_inputs, run_layer
from awq_ref.modules.swap import LinearError
from awq_ref.primitives.compute_dtype import COMPUTE_DTYPES


def float_tensors(prefix: str, layer: nn.Module) -> dict[str, torch.Tensor]:
    """The layer's state as an AWQ checkpoint stores it (AwqLinear buffers, other floats fp16)."""
    return {prefix + name: stored_tensor(t.detach()) for name, t in layer.state_dict().items()}


class LayerStep:
    def begin(self, model: nn.Module) -> None:
        pass

    def quantize(self, model: nn.Module, index: int, layer: nn.Module) -> list[LinearError]:
        raise NotImplementedError

    def keep(self, model: nn.Module, index: int, layer: nn.Module) -> None:
        pass

    def tensors(self, prefix: str, layer: nn.Module) -> dict[str, torch.Tensor]:
        return float_tensors(prefix, layer)


class RtnStep(LayerStep):
    def __init__(self, request):
        self.request = request

    def quantize(self, model, index, layer):
        prefix = f"{layer_prefix(model)}.{index}."
        return rtn_quantize_layer(layer, self.request.spec, self.request.version,
                                  self.request.modules_to_not_convert, prefix)


class CalibratedStep(LayerStep):
    """Carries the hidden states entering the next layer, and the layer kwargs."""

    def __init__(self, request, calib_ids: torch.Tensor, compute_dtype: torch.dtype):
        self.request, self.calib_ids, self.dtype = request, calib_ids, compute_dtype
        self.hidden, self.kwargs = None, None

    def begin(self, model):
        self.hidden, self.kwargs = first_layer_inputs(model, self.calib_ids, self.dtype)


class AwqStep(CalibratedStep):
    def __init__(self, request, calib_ids: torch.Tensor):
        super().__init__(request, calib_ids, request.awq.torch_dtype)
        self.result = AwqResult()

    def quantize(self, model, index, layer):
        before = len(self.result.errors)
        self.hidden = awq_layer(layer, model, self.hidden, self.kwargs, self.request.spec, self.request.awq,
                                "real", self.request.version, index, self.result, False)
        return self.result.errors[before:]

    def keep(self, model, index, layer):
        with torch.no_grad():
            self.hidden = run_layer(copy.deepcopy(layer).to(self.dtype), self.hidden, self.kwargs)


class GptqStep(CalibratedStep):
    """GPTQ in its own layout; the next layer's input is the quantised layer's output."""

    def __init__(self, request, calib_ids: torch.Tensor, checkpoint_format: str = "gptq"):
        super().__init__(request, calib_ids, COMPUTE_DTYPES[request.gptq.compute_dtype])
        self.result, self.checkpoint_format = GptqResult(), checkpoint_format

    def quantize(self, model, index, layer):
        before = len(self.result.errors)
        self.hidden = gptq_layer(model, layer, self.hidden, self.kwargs, self.request.spec, self.request.gptq,
                                 f"{layer_prefix(model)}.{index}.", self.result, True)
        return self.result.errors[before:]

    def keep(self, model, index, layer):
        raise ValueError("GPTQ's layout has no float layers (modules_to_not_convert)")

    def tensors(self, prefix, layer):
        weights = {name: qw for name, qw in self.result.weights.items() if name.startswith(prefix)}
        state = {prefix + name: t for name, t in layer.state_dict().items()}
        for name in weights:
            del self.result.weights[name]
        return gptq_tensors(state, weights, self.checkpoint_format)
