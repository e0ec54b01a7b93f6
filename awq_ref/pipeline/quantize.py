"""Quantise a model with a registered method: the method's step over the one layer loop.

``quantize_model`` quantises a loaded model in place (evaluation, goldens, tests);
``run_step`` does the same with a step the caller built and keeps (to read what the step
recorded: AWQ's scales and clips, GPTQ's codes). ``output_layout`` is the checkpoint folder
``request.version`` (a format name) asks for, from the table of layouts (``checkpoint.layouts``),
with the method's own ``quantization_config`` where it has one; a MoE family's routers and gates
(``arch.float_readers``) are listed in its ``modules_to_not_convert``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint import layouts
from awq_harness.awq_ref.checkpoint.layouts import LayoutRequest
from awq_harness.awq_ref.checkpoint.writer import OutputLayout
from awq_harness.awq_ref.methods.method import LayerStep, Method
from awq_harness.awq_ref.methods.registry import QuantizeRequest, calibration_ids, get_method
from awq_harness.awq_ref.model.arch import float_readers
from awq_harness.awq_ref.modules.swap import LinearError
from awq_harness.awq_ref.pipeline.layer_loop import Loaded, quantize_layers
from awq_harness.awq_ref.primitives.device import resolve_device


def check_request(method: Method, request: QuantizeRequest) -> None:
    """The method can do what the request asks: write its version (None: fake quantisation), skip its modules."""
    if request.version is None and not method.fake_quant:
        raise ValueError(f"{method.name} cannot fake-quantise (version None)")
    if request.version is not None and request.version not in method.formats:
        raise ValueError(f"{method.name} writes {'|'.join(method.formats)}, not {request.version!r}")
    if request.modules_to_not_convert and not method.skips_modules:
        raise ValueError(f"{method.name}: modules_to_not_convert is not supported")


def method_step(method: str | Method, request: QuantizeRequest, calibration=None) -> LayerStep:
    """The method's step; ``calibration``: calibration token ids, or the tokenizer to draw them with."""
    method = get_method(method) if isinstance(method, str) else method
    check_request(method, request)
    ids = None
    if method.calibrated:
        ids = calibration if isinstance(calibration, torch.Tensor) else calibration_ids(calibration, request)
    return method.make_step(request, ids)


def run_step(model: nn.Module, step: LayerStep, on_layer: Callable[[int], None] | None = None,
             kept: list[int] = (), device: torch.device | str | None = None) -> list[LinearError]:
    """``step`` over every decoder layer of ``model``, in place, each layer on ``device`` (None: where
    the model lives; a CPU model quantised on CUDA gets its layers back on the CPU); the per-linear errors."""
    return quantize_layers(Loaded(model), step, None, kept, on_layer, _device(device))


def quantize_model(model: nn.Module, method: str | Method, request: QuantizeRequest, calibration=None,
                   on_layer: Callable[[int], None] | None = None,
                   device: torch.device | str | None = None) -> list[LinearError]:
    """Quantise ``model`` in place with ``method`` (``request.version`` None: fake-quantise) on
    ``device`` ("auto", "cpu", "cuda", "cuda:N" or a torch.device; None: where the model lives)."""
    return run_step(model, method_step(method, request, calibration), on_layer, device=device)


def _device(device: torch.device | str | None) -> torch.device | None:
    return resolve_device(device) if isinstance(device, str) else device


def output_layout(model: nn.Module, method: str | Method, request: QuantizeRequest,
                  not_converted: list[str] | None) -> OutputLayout:
    """The folder for ``request.version`` written by ``method`` (GPTQ: v1, ``checkpoint_format: "gptq"``;
    v1 stores z - 1, so a group whose zero point is 0 cannot be written)."""
    method = get_method(method) if isinstance(method, str) else method
    check_request(method, request)
    config = method.quantization_config(request) if method.quantization_config else None
    readers = float_readers(model) if request.version != "gptq" else []  # routers, gates: always float
    not_converted = [*(not_converted or []), *readers] or not_converted
    return layouts.output_layout(model, LayoutRequest(request.version, request.spec, not_converted, config))
