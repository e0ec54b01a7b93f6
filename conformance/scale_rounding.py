"""Scales a target layout cannot store as they are: rounded to fp16, or refused.

AutoAWQ's GEMM layout (and every GEMM kernel that reads it) keeps scales in fp16 or bf16;
llm-compressor also writes float32 scales when it calibrated in float32. A converted folder
must be one its readers accept, so a source scale dtype the target layout does not allow
(``<layout>.DTYPES[<layout>.SCALES]``) is rounded to fp16, the dtype AutoAWQ writes.

The codes and zeros are kept, so a dequantised weight ``(q - z) * s`` changes by exactly the
relative change of its group's scale (zero where ``q == z``); ``Rounding`` keeps the largest
such change of any dequantised weight and where it happened. A scale that fp16 cannot hold
(finite beyond fp16's range, or non-zero but rounding to zero, which would zero its whole
group) is refused before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.primitives.quant import QuantizedWeight

ROUNDED_DTYPE = torch.float16
SAFETENSORS_NAMES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32"}


def target_scale_dtype(source: torch.dtype, target_layout) -> torch.dtype:
    """The source's scale dtype where the target layout allows it, else fp16."""
    allowed = target_layout.DTYPES[target_layout.SCALES]
    return source if SAFETENSORS_NAMES.get(source) in allowed else ROUNDED_DTYPE


def check_fits(scales: torch.Tensor, dtype: torch.dtype, tensor: str) -> None:
    """Refuse (one line naming the tensor) when a scale does not survive the cast to ``dtype``."""
    if dtype == scales.dtype:
        return
    cast = scales.to(dtype)
    bad = ~torch.isfinite(cast) | ((cast == 0) & (scales != 0))
    if bool(bad.any()):
        value = float(scales[bad].flatten()[0])
        raise HarnessError(f"{tensor}: scale {value:.6g} does not fit {SAFETENSORS_NAMES[dtype]} "
                           f"(range {torch.finfo(dtype).tiny:.3g}..{torch.finfo(dtype).max:.6g}); nothing written")


def relative_change(qw: QuantizedWeight, dtype: torch.dtype) -> float:
    """Largest |w' - w| / |w| over the non-zero dequantised weights when the scales go to ``dtype``."""
    if dtype == qw.scales.dtype:
        return 0.0
    before = qw.dequantize(torch.float64)
    after = QuantizedWeight(qw.q, qw.scales.to(dtype), qw.zeros, qw.spec).dequantize(torch.float64)
    nonzero = before != 0
    if not bool(nonzero.any()):
        return 0.0
    return float(((after - before).abs()[nonzero] / before.abs()[nonzero]).max())


@dataclass
class Rounding:
    """What rounding the scales did to the dequantised weights of a conversion."""
    source_dtype: str | None = None
    target_dtype: str | None = None
    layers: int = 0
    max_relative_change: float = 0.0
    worst_layer: str | None = None

    def add(self, layer: str, source: torch.dtype, target: torch.dtype, change: float) -> None:
        if source == target:
            return
        self.source_dtype, self.target_dtype = SAFETENSORS_NAMES[source], SAFETENSORS_NAMES[target]
        self.layers += 1
        if change >= self.max_relative_change:
            self.max_relative_change, self.worst_layer = change, layer

    def line(self) -> str:
        if not self.layers:
            return "scales kept as they are (lossless)"
        return (f"scales rounded {self.source_dtype} -> {self.target_dtype} in {self.layers} layers; largest "
                f"relative change of a dequantised weight {self.max_relative_change:.3g} ({self.worst_layer})")

    def to_json(self) -> dict:
        return {"source_dtype": self.source_dtype, "target_dtype": self.target_dtype, "layers": self.layers,
                "max_relative_change": self.max_relative_change, "worst_layer": self.worst_layer}
