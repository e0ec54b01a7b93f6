"""What a quantisation method is to the harness: one ``Method`` record and a ``LayerStep``.

Every method quantises a model one decoder layer at a time (``awq_ref.pipeline.layer_loop``
drives the steps, for a model folder read lazily or a model already in memory). A step sees
the model only through its skeleton (decoder layers on ``meta`` except the one being worked
on) and keeps between layers only what the method carries forward (the calibrated methods'
hidden states and layer kwargs):

    use_device(device)      where the loop will put each layer (before ``begin``): carried
                            activations and the method's working tensors live there
    begin(model)            the tensors that precede layer 0 are loaded: take the calibration
                            inputs of layer 0 (calibrated methods)
    quantize(model, i, L)   quantise layer i in place; return its per-linear errors
    keep(model, i, L)       layer i stays float: advance the carried state as if it had been
                            quantised and restored (AWQ: the float output)
    float_copy(model, i, L) before quantising layer i: a float copy of it in the basis the
                            quantised layer will have, for linears kept in float (AWQ folds its
                            scales in, RTN copies); a method that cannot refuses
    tensors(prefix, L)      what the checkpoint stores for the layer (names from the root)

``request.version`` says what ``quantize`` leaves: None fake-quantises (weights become
(q - z) * s, any bit width), a format name ("gemm", "gemv", "gptq") the layer that format
stores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.plan import stored_tensor
from awq_harness.awq_ref.model.walk import first_layer_inputs
from awq_harness.awq_ref.modules.swap import LinearError
from awq_harness.awq_ref.primitives.device import CPU, to_device


def float_tensors(prefix: str, layer: nn.Module) -> dict[str, torch.Tensor]:
    """The layer's state as an AWQ checkpoint stores it (AwqLinear buffers, other floats fp16)."""
    return {prefix + name: stored_tensor(t.detach()) for name, t in layer.state_dict().items()}


class LayerStep:
    device: torch.device = CPU

    def use_device(self, device: torch.device) -> None:
        self.device = device

    def begin(self, model: nn.Module) -> None:
        pass

    def quantize(self, model: nn.Module, index: int, layer: nn.Module) -> list[LinearError]:
        raise NotImplementedError

    def keep(self, model: nn.Module, index: int, layer: nn.Module) -> None:
        pass

    def float_copy(self, model: nn.Module, index: int, layer: nn.Module) -> nn.Module:
        raise ValueError(f"{type(self).__name__} cannot keep single linears in float")

    def tensors(self, prefix: str, layer: nn.Module) -> dict[str, torch.Tensor]:
        return float_tensors(prefix, layer)


class WrappedStep(LayerStep):
    """A step around a method's step (``inner``): everything is the inner step's unless overridden."""

    def __init__(self, inner: LayerStep):
        self.inner = inner

    def use_device(self, device):
        super().use_device(device)
        self.inner.use_device(device)

    def begin(self, model):
        self.inner.begin(model)

    def quantize(self, model, index, layer):
        return self.inner.quantize(model, index, layer)

    def keep(self, model, index, layer):
        self.inner.keep(model, index, layer)

    def float_copy(self, model, index, layer):
        return self.inner.float_copy(model, index, layer)

    def tensors(self, prefix, layer):
        return self.inner.tensors(prefix, layer)


class CalibratedStep(LayerStep):
    """Carries the hidden states entering the next layer, and the layer kwargs, in ``dtype``."""

    def __init__(self, calib_ids: torch.Tensor, dtype: torch.dtype):
        self.calib_ids, self.dtype = calib_ids, dtype
        self.hidden, self.kwargs = None, None

    def begin(self, model):
        hidden, kwargs = first_layer_inputs(model, self.calib_ids, self.dtype)
        self.hidden, self.kwargs = to_device(hidden, self.device), to_device(kwargs, self.device)


class MethodOptions(Protocol):
    """A method's own settings: its CLI flags and the request they make."""

    def add_flags(self, group) -> None:
        """Add the flags to an argparse argument group (shared by ``quantize`` and ``eval``)."""

    def configure(self, request, args, dtype: str):
        """``request`` with the settings from ``args``; ``dtype``: the resolved --calib-dtype."""


def no_metadata(request) -> dict:
    return {}


@dataclass(frozen=True)
class Method:
    """One quantisation method, everything the CLI, the evaluator and the golden builder need.

    ``make_step(request, calib_ids)`` builds the layer step (``calib_ids`` is None unless
    ``calibrated``). ``formats`` are the on-disk layouts it writes; ``fake_quant``: it can
    fake-quantise (version None, any bit width) for evaluation; ``keeps_float``: its step
    makes float copies (``LayerStep.float_copy``) and keeps whole layers, so
    ``--keep-layers`` works; ``skips_modules``: it honours ``request.modules_to_not_convert``.
    ``metadata(request)`` adds keys to ``awq_harness.json``.
    ``quantization_config(request)``, for a method whose settings its format's config records
    (GPTQ), is the whole config it writes; None: the layout's own (``checkpoint.layouts``).
    """

    name: str
    make_step: Callable[[object, torch.Tensor | None], LayerStep]
    formats: tuple[str, ...] = ("gemm", "gemv")
    calibrated: bool = False
    fake_quant: bool = True
    keeps_float: bool = False
    skips_modules: bool = False
    options: MethodOptions | None = None
    metadata: Callable[[object], dict] = no_metadata
    quantization_config: Callable[[object], dict] | None = None
