"""Clip search (llm-awq ``auto_clip``, AutoAWQ ``_compute_best_clip``; not in llm-compressor).

After scaling, each weight group (row n, input group g) may be clipped to [-m, m] with
m = max|w| * (1 - i / clip_grid), i < max_shrink * clip_grid (factors 1.00, 0.95, ..., 0.55
by default). The loss of a candidate is, per (n, g), the mean over sampled tokens of the
squared error of that group's partial dot product:

    err[n, g] = mean_t ( sum_{k in g} x[t, k] (Q(clip(w))[n, k] - w[n, k]) )^2

(AutoAWQ subtracts the two partial products; we multiply the weight difference, which is
the same quantity with less cancellation.) Tokens are sampled every T // clip_tokens-th
(at least every one). The first minimum wins.
The partial products are one batched matmul per group ([G, N] x [G, t]) instead of
AutoAWQ's broadcast-and-sum; output rows are processed in chunks to bound memory, which does
not change the result (AutoAWQ's chunks of 256 or 64 rows also require N % 64 == 0; we don't).
Clipping and quantising run in float32; the batched products run in the search's compute
dtype (float32 by default; bfloat16 is about 3x faster here, the differences are formed in
float32 first so bfloat16 only rounds the small products). Which linears are clipped: see ``arch.clipped`` (not q/k).
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.methods.awq.fakequant import fake_quantize
from awq_harness.awq_ref.primitives.quant import QuantSpec

ROW_CHUNK = 256


def sampled_groups(x: torch.Tensor, group: int, n_tokens: int) -> torch.Tensor:
    """Inputs [T, K] -> [K / G, G, t] float32, with every max(1, T // n_tokens)-th token."""
    flat = x.reshape(-1, x.shape[-1])
    flat = flat[:: max(1, flat.shape[0] // n_tokens)].float()
    return flat.reshape(flat.shape[0], -1, group).permute(1, 2, 0)


def partial_products(w: torch.Tensor, xg: torch.Tensor) -> torch.Tensor:
    """w [n, K], xg [K/G, G, t] -> per-group dot products [K/G, n, t]."""
    n_groups, group, _ = xg.shape
    return torch.bmm(w.reshape(-1, n_groups, group).transpose(0, 1), xg)


def best_clip_rows(w: torch.Tensor, xg: torch.Tensor, spec: QuantSpec, clip_grid: int,
                   max_shrink: float) -> torch.Tensor:
    """Best max value per (row, group) for w [n, K] float32, xg in the compute dtype: [n, K/G]."""
    n_groups, group, _ = xg.shape
    wg = w.reshape(-1, n_groups, group)
    org_max = wg.abs().amax(dim=2)
    best_max, best_err = org_max.clone(), torch.full_like(org_max, float("inf"))
    for i in range(int(max_shrink * clip_grid)):
        max_val = org_max * (1 - i / clip_grid)
        clipped = torch.maximum(torch.minimum(wg, max_val[..., None]), -max_val[..., None])
        q = fake_quantize(clipped.reshape(w.shape), spec)
        err = partial_products((q - w).to(xg.dtype), xg).float().pow(2).mean(dim=2).t()
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_max = torch.where(better, max_val, best_max)
    return best_max


@torch.no_grad()
def search_clip(w: torch.Tensor, x: torch.Tensor, spec: QuantSpec, clip_grid: int = 20,
                max_shrink: float = 0.5, n_tokens: int = 512, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Per (row, group) clip values [N, K/G] for weight w [N, K] given inputs x [..., K]."""
    w = w.float()
    xg = sampled_groups(x, spec.group_width(w.shape[1]), n_tokens).to(dtype)
    chunks = [best_clip_rows(w[r : r + ROW_CHUNK], xg, spec, clip_grid, max_shrink)
              for r in range(0, w.shape[0], ROW_CHUNK)]
    return torch.cat(chunks, dim=0)


@torch.no_grad()
def apply_clip(weight: torch.Tensor, max_val: torch.Tensor) -> None:
    """Clamp each group of ``weight`` [N, K] to [-max_val, max_val] in place."""
    n, k = weight.shape
    wg = weight.view(n, max_val.shape[1], -1)
    m = max_val.to(weight.dtype)[..., None]
    wg.copy_(torch.maximum(torch.minimum(wg, m), -m))
