"""A layer's dimensions as its stored tensors state them, and the shape helpers the layouts share.

Every layout can say a layer's (out N, in K, number of groups, pack factor) from tensor
shapes alone (``<layout>.dims``), so a config's claims can be checked against the tensors
rather than trusted. Tensors are described by shape only: ``{suffix: shape}``, plus the few
small tensors whose values a layout needs (compressed-tensors' ``weight_shape``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

Shapes = Mapping[str, tuple[int, ...]]  # tensor suffix -> shape
FLOAT_SCALES = frozenset({"F16", "BF16"})  # safetensors dtype names
CODES_PER_WORD = 8  # 4-bit codes in one int32


@dataclass(frozen=True)
class Dims:
    n: int  # out_features
    k: int  # in_features
    groups: int | None  # None when the tensors do not say (GEMV pads its scales)
    pack: float  # codes per int32 word (8 for 4 bits)

    @property
    def bits(self) -> float:
        return 32 / self.pack if self.pack else 0

    def group_width(self) -> int | None:
        if not self.groups or self.k % self.groups:
            return None
        return self.k // self.groups


def two_d(*shapes: tuple[int, ...] | None) -> bool:
    """Every shape given, 2-D and non-empty."""
    return all(s is not None and len(s) == 2 and all(s) for s in shapes)


def ceil8(x: int) -> int:
    return -(-x // CODES_PER_WORD)
