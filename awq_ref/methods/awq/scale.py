"""Scale search (paper eqs. 3-4): s* = argmin_s || Q(W diag(s)) (diag(s)^-1 X) - W X ||.

The search space is s = s_X^alpha on a grid of alpha in {0, 1/n, ..., (n-1)/n}. With duo
scaling (AutoAWQ's default since PR #216) the candidate also divides by the weight
statistic: s = s_X^alpha / (s_W^(1-alpha) + 1e-4). Every candidate is clamped at 1e-4 and
normalised by sqrt(max(s) min(s)); inf/NaN entries become 1.

The loss is the float32 mean squared difference between the output of the inspected module
(attention, MLP, or the single consuming linear) with the original weights and with
Q(W s) / s in place of each balance linear's weight. The first minimum wins (strict <).

Differences between implementations:
  * llm-awq HEAD uses the plain form (no duo) and clamps at 1e-4; its first release used duo;
  * llm-compressor's duo grid is alpha = i / (n-2) plus an explicit identity point, and it
    quantises with compressed-tensors' formulas;
  * AutoAWQ casts s_X back to the model dtype (fp16); we keep s_X, s_W and s in float32.
"""
from __future__ import annotations

import inspect as pyinspect
import math
from dataclasses import dataclass

import torch
from torch import nn

from awq_harness.awq_ref.methods.awq.fakequant import fake_quantize
from awq_harness.awq_ref.primitives.quant import QuantSpec

SCALE_FLOOR = 1e-4  # AutoAWQ's clamp and duo epsilon


def candidate_scales(x_mean: torch.Tensor, w_mean: torch.Tensor, alpha: float, duo: bool) -> torch.Tensor:
    if duo:
        s = x_mean.pow(alpha) / (w_mean.pow(1 - alpha) + SCALE_FLOOR)
    else:
        s = x_mean.pow(alpha)
    s = s.clamp(min=SCALE_FLOOR)
    s = s / (s.max() * s.min()).sqrt()
    return torch.where(torch.isfinite(s), s, torch.ones_like(s))


def scaled_quantized(w: torch.Tensor, s: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Q(W diag(s)) diag(s)^-1, in float32."""
    w, s = w.float(), s.float()
    return fake_quantize(w * s, spec) / s


def output_mse(reference: torch.Tensor, out: torch.Tensor) -> float:
    """Mean squared difference in float32; ``reference`` is already float32 (cached)."""
    diff = out.float() - reference
    return float(torch.linalg.vector_norm(diff).square() / diff.numel())


def _accepted(module: nn.Module, kwargs: dict) -> dict:
    """The layer kwargs this sub-module's forward takes (transformers 4.5x's OPT attention, for
    one, has no ``use_cache``); a forward with ``**kwargs`` takes them all."""
    params = pyinspect.signature(module.forward).parameters
    if any(p.kind is pyinspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def run_module(module: nn.Module, x: torch.Tensor, kwargs: dict) -> torch.Tensor:
    out = module(x, **_accepted(module, kwargs))
    return out[0] if isinstance(out, tuple) else out


@dataclass
class ScaleChoice:
    alpha: float
    loss: float
    scales: torch.Tensor  # float32 [K]
    losses: list[float]   # one per grid point, for reports and tests


class SwappedWeights:
    """Put candidate weights into linears for the duration of a ``with`` block."""

    def __init__(self, linears: list[nn.Linear], weights: list[torch.Tensor]):
        self.linears, self.weights = linears, weights

    def __enter__(self):
        self.saved = [lin.weight.data for lin in self.linears]
        for lin, w in zip(self.linears, self.weights):
            lin.weight.data = w.to(lin.weight.dtype)

    def __exit__(self, *exc):
        for lin, w in zip(self.linears, self.saved):
            lin.weight.data = w


@torch.no_grad()
def search_scale(linears: list[nn.Linear], master_weights: list[torch.Tensor], inspect: nn.Module,
                 x: torch.Tensor, kwargs: dict, x_mean: torch.Tensor, w_mean: torch.Tensor,
                 spec: QuantSpec, n_grid: int, duo: bool) -> ScaleChoice:
    """Grid-search alpha for one group. ``linears`` live inside ``inspect`` (the working copy)."""
    reference = run_module(inspect, x, kwargs).float()
    best, losses = None, []
    for i in range(n_grid):
        s = candidate_scales(x_mean, w_mean, i / n_grid, duo)
        trial = [scaled_quantized(w, s, spec) for w in master_weights]
        with SwappedWeights(linears, trial):
            loss = output_mse(reference, run_module(inspect, x, kwargs))
        losses.append(loss)
        if math.isfinite(loss) and (best is None or loss < best.loss):
            best = ScaleChoice(i / n_grid, loss, s, losses)
    if best is None:
        raise FloatingPointError(f"no finite loss on the scale grid for {len(linears)} linears: {losses}")
    return best
