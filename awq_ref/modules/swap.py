"""Swap float linears for quantised ones, and measure what quantisation changed."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.primitives.quant import QuantizedWeight


@dataclass(frozen=True)
class LinearError:
    """Relative Frobenius error ||W_hat - W|| / ||W|| of one quantised linear."""

    name: str
    rel_error: float


def relative_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    w, w_hat = w.double(), w_hat.double()
    return float(torch.linalg.norm(w_hat - w) / torch.linalg.norm(w).clamp(min=1e-30))


def excluded(name: str, modules_to_not_convert: list[str] | None) -> bool:
    """AutoAWQ / transformers / vLLM semantics: a listed entry excludes every name containing it."""
    return any(entry in name for entry in modules_to_not_convert or [])


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def replace_linears(layer: nn.Module, quantized: dict[str, QuantizedWeight], version: str | None) -> None:
    """Replace each named nn.Linear of ``layer`` by an AwqLinear holding its packed tensors.

    ``version=None`` is fake quantisation: the float linear keeps its place and gets the
    dequantised weight (q - z) * s, for bit widths no packed layout stores (e.g. 3 bits).
    """
    for name, qw in quantized.items():
        linear = layer.get_submodule(name)
        if version is None:
            linear.weight.data = qw.dequantize(torch.float32).to(linear.weight.dtype)
        else:
            set_submodule(layer, name, AwqLinear.from_quantized(qw, version, linear.bias))
