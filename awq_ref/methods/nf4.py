"""NF4 (QLoRA, Dettmers et al. 2023) by bitsandbytes: 4-bit NormalFloat with a per-block absmax.

Each block of ``group_size`` consecutive weights (along the input dimension) is divided by its
absolute maximum and each value is replaced by the nearest of 16 fixed codes: the quantiles of
a standard normal, rescaled to [-1, 1], with an exact zero (``NF4_CODEBOOK``, the values
bitsandbytes publishes in ``functional.get_4bit_type``). Symmetric, no zero point, no
calibration; the absmax is kept in float32 (no double quantisation). 4-bit only.

Quantised and dequantised by ``bitsandbytes.functional.quantize_4bit`` / ``dequantize_4bit``
(its CPU backend); this module adds no numerics of its own.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.methods.method import Method
from awq_harness.awq_ref.methods.weight_only import WeightOnlyStep, require

NF4_CODEBOOK = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
)
BLOCK_SIZES = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # what quantize_4bit accepts on CPU


def nf4_fake_quant(w: torch.Tensor, spec) -> torch.Tensor:
    if spec.bits != 4:
        raise ValueError(f"NF4 is a 4-bit code; --w-bit {spec.bits} is not available")
    block = w.shape[1] if spec.group_size == -1 else spec.group_size
    if block not in BLOCK_SIZES or w.shape[1] % block:
        raise ValueError(f"bitsandbytes NF4 takes blocks of {'/'.join(map(str, BLOCK_SIZES))} dividing "
                         f"in_features {w.shape[1]}, not {block}")
    functional = require("bitsandbytes.functional", "nf4")
    packed, state = functional.quantize_4bit(w, blocksize=block, quant_type="nf4", compress_statistics=False)
    return functional.dequantize_4bit(packed, state)


NF4 = Method("nf4", lambda request, calib_ids: WeightOnlyStep(request, nf4_fake_quant), formats=())
