"""HQQ (Half-Quadratic Quantization, Badri & Shaji 2023) by the ``hqq`` package: calibration-free.

Affine group quantisation ``W ~ s (q - z)`` like RTN, but the zero point (and so the codes) is
optimised per group to minimise an l_p (p < 1) norm of the weight error by a half-quadratic
solver, instead of taken from the group's min and max; the scale stays min-max. Groups are
``group_size`` consecutive weights along the input dimension (``axis=1``), as ours.

Quantised and dequantised by ``hqq.core.quantize.Quantizer`` (``optimize=True``, its default
solver settings) in float32 on the CPU; this module adds no numerics of its own.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.methods.method import Method
from awq_harness.awq_ref.methods.weight_only import WeightOnlyStep, require

HQQ_BITS = (1, 2, 3, 4, 8)


def hqq_fake_quant(w: torch.Tensor, spec) -> torch.Tensor:
    if spec.bits not in HQQ_BITS:
        raise ValueError(f"hqq quantises to {'/'.join(map(str, HQQ_BITS))} bits, not {spec.bits}")
    group = w.shape[1] if spec.group_size == -1 else spec.group_size
    quantizer = require("hqq.core.quantize", "hqq").Quantizer
    codes, meta = quantizer.quantize(w, nbits=spec.bits, group_size=group, optimize=True, axis=1,
                                     compute_dtype=torch.float32, device="cpu", bitpack=False)
    return quantizer.dequantize(codes, meta).reshape(w.shape).float()


HQQ = Method("hqq", lambda request, calib_ids: WeightOnlyStep(request, hqq_fake_quant), formats=())
