"""Quantisation methods by name: one ``Method`` record each (``awq_ref.methods.method``).

The CLI (``--method`` choices, flags, method/format checks), the evaluator, keep/refold and
the golden builder read this registry; a new method is its own module, defining its record
and step, plus one line here (or a ``register`` call, as a test does for a toy method).

``awq`` and ``gptq`` draw ``request.calib_samples`` x ``request.seqlen`` calibration tokens
(``awq_ref.data.calibration``, seeded by ``request.seed``). Their settings are ``request.awq``
and ``request.gptq``, recorded with the request in the checkpoint metadata.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods import gptq, hqq, nf4, rtn
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.method import AWQ
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.method import Method
from awq_harness.awq_ref.primitives.quant import QuantSpec


@dataclass(frozen=True)
class QuantizeRequest:
    spec: QuantSpec
    version: str | None = "gemm"  # None: fake-quantise in place (any bit width); else the format written
    calib_samples: int = 128
    seqlen: int = 512
    seed: int = 0
    modules_to_not_convert: list[str] | None = field(default=None)
    awq: AwqSearchConfig = field(default_factory=AwqSearchConfig)
    gptq: GptqConfig = field(default_factory=GptqConfig)
    calib_domain: str = "austen"  # the text domain of the calibration split (awq_ref.data.corpus)

    def to_json(self) -> dict:
        """Recorded in checkpoint metadata; the domain only when it is not the default, so
        checkpoints calibrated on the default text keep the metadata they always had."""
        out = asdict(self)
        if out["calib_domain"] == "austen":
            del out["calib_domain"]
        return out


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    _METHODS.pop(name, None)


def method_names() -> list[str]:
    return sorted(_METHODS)


def methods() -> list[Method]:
    return [_METHODS[name] for name in method_names()]


def get_method(name: str) -> Method:
    if name not in _METHODS:
        raise HarnessError(f"unknown method {name!r}; available: {', '.join(method_names())}")
    return _METHODS[name]


def calibration_ids(tokenizer, request: QuantizeRequest) -> torch.Tensor:
    from awq_harness.awq_ref.data.calibration import calibration_blocks

    if tokenizer is None:
        raise ValueError("calibrated methods need the model's tokenizer")
    return calibration_blocks(tokenizer, request.calib_samples, request.seqlen, request.seed,
                              domain=request.calib_domain)


for _builtin in (AWQ, gptq.GPTQ, rtn.RTN, nf4.NF4, hqq.HQQ):
    register(_builtin)
