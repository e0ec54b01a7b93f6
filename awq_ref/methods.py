"""Quantisation methods by name: each quantises a float model in place, layer by layer.

A method is ``fn(model, tokenizer, request, on_layer) -> list[LinearError]``; the CLI and the
evaluator look methods up here, so a new method is one entry in ``METHODS``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from torch import nn

from awq_ref.apply import LinearError
from awq_ref.quant import QuantSpec
from awq_ref.rtn import rtn


@dataclass(frozen=True)
class QuantizeRequest:
    spec: QuantSpec
    version: str | None = "gemm"  # None: fake-quantise in place (any bit width)
    calib_samples: int = 128
    seqlen: int = 512
    seed: int = 0
    modules_to_not_convert: list[str] | None = field(default=None)

    def to_json(self) -> dict:
        return asdict(self)


Method = Callable[[nn.Module, object, QuantizeRequest, Callable[[int], None] | None], list[LinearError]]


def _rtn(model, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    return rtn(model, request.spec, request.version, request.modules_to_not_convert, on_layer)


METHODS: dict[str, Method] = {"rtn": _rtn}
CALIBRATED: set[str] = set()  # methods that read calibration data


def run_method(name: str, model: nn.Module, tokenizer, request: QuantizeRequest, on_layer=None) -> list[LinearError]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](model, tokenizer, request, on_layer)
