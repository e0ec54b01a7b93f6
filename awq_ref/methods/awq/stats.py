"""The two per-input-channel statistics the scale search is built on (paper section 3.2)."""
from __future__ import annotations

import torch

CHUNK_TOKENS = 8192  # bounds the float32 copy made while summing
GROUP_MAX_EPS = 1e-6  # AutoAWQ PR #519


def activation_mean(x: torch.Tensor) -> torch.Tensor:
    """s_X[k] = mean over all tokens of |X[:, k]|, summed in float32 (AutoAWQ); shape [K]."""
    flat = x.reshape(-1, x.shape[-1])
    total = torch.zeros(flat.shape[1], dtype=torch.float32, device=x.device)
    for start in range(0, flat.shape[0], CHUNK_TOKENS):
        total += flat[start : start + CHUNK_TOKENS].float().abs().sum(dim=0)
    return total / flat.shape[0]


def weight_mean(weights: list[torch.Tensor], group_size: int) -> torch.Tensor:
    """Mean over output rows of |w| / max|w| in its quantisation group (AutoAWQ duo scaling); [K].

    The balance linears' weights are stacked along the output dimension first.
    """
    w = torch.cat([wi.float() for wi in weights], dim=0)
    g = w.shape[1] if group_size == -1 else group_size
    groups = w.abs().reshape(-1, g)
    relative = groups / (groups.amax(dim=1, keepdim=True) + GROUP_MAX_EPS)
    return relative.reshape(w.shape).mean(dim=0)
