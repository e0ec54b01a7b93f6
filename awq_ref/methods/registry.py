"""Quantisation methods by name: each quantises a float model in place, layer by layer.

A method is ``fn(model, tokenizer, request, on_layer) -> list[LinearError]``; the CLI and the
evaluator look methods up here, so a new method is one entry in ``METHODS``.

``awq`` and ``gptq`` draw ``request.calib_samples`` x ``request.seqlen`` calibration tokens
(``awq_ref.data.calibration``, seeded by ``request.seed``). Their settings are ``request.awq``
and ``request.gptq``, recorded with the request in the checkpoint metadata.
``version=None`` fake-quantises (weights become (q - z) * s; any bit width); a version
swaps in AwqLinear modules. GPTQ has no AWQ layout: it writes fake-quantised weights, or a
GPTQ-layout checkpoint through ``awq_ref.checkpoint.gptq``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from awq_ref.methods.awq import AwqSearchConfig, awq_quantize
from awq_ref.methods.gptq import GptqConfig, gptq
from awq_ref.methods.rtn import rtn
from awq_ref.modules.swap import LinearError
from awq_ref.primitives.quant import QuantSpec


@dataclass(frozen=True)
class QuantizeRequest:
    spec: QuantSpec
    version: str | None = "gemm"  # None: fake-quantise in place (any bit width)
    calib_samples: int = 128
    seqlen: int = 512
    seed: int = 0
    modules_to_not_convert: list[str] | None = field(default=None)
    awq: AwqSearchConfig = field(default_factory=AwqSearchConfig)
    gptq: GptqConfig = field(default_factory=GptqConfig)

    def to_json(self) -> dict:
        return asdict(self)


Method = Callable[[nn.Module, object, QuantizeRequest, Callable[[int], None] | None], list[LinearError]]


def _rtn(model, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    return rtn(model, request.spec, request.version, request.modules_to_not_convert, on_layer)


def calibration_ids(tokenizer, request: QuantizeRequest) -> torch.Tensor:
    from awq_ref.data.calibration import calibration_blocks

    if tokenizer is None:
        raise ValueError("calibrated methods need the model's tokenizer")
    return calibration_blocks(tokenizer, request.calib_samples, request.seqlen, request.seed)


def _no_exclusions(method: str, request: QuantizeRequest) -> None:
    if request.modules_to_not_convert:
        raise ValueError(f"{method}: modules_to_not_convert is not supported yet")


def _awq(model, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    _no_exclusions("awq", request)
    mode = "fake" if request.version is None else "real"
    result = awq_quantize(model, calibration_ids(tokenizer, request), request.spec, request.awq,
                          mode=mode, version=request.version or "gemm", on_layer=on_layer)
    return result.errors


def _gptq(model, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    _no_exclusions("gptq", request)
    if request.version is not None:
        raise ValueError("gptq cannot write AWQ layouts; use fake quantisation (version None) "
                         "or awq_ref.checkpoint.gptq for the GPTQ layout")
    return gptq(model, calibration_ids(tokenizer, request), request.spec, request.gptq, on_layer=on_layer).errors


METHODS: dict[str, Method] = {"rtn": _rtn, "awq": _awq, "gptq": _gptq}
CALIBRATED: set[str] = {"awq", "gptq"}  # methods that read calibration data


def run_method(name: str, model: nn.Module, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](model, tokenizer, request, on_layer)
