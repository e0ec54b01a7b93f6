"""Which calibration blocks the scale search's loss is computed on (``--loss-blocks``).

AutoAWQ computes the loss of every scale-grid point on all calibration blocks; a subset of
evenly spaced blocks keeps the search's choice close at a fraction of the forwards, while
the statistics and the clip search still see every block.
"""
from __future__ import annotations

import torch


def block_rows(n_blocks: int, keep: int | None) -> torch.Tensor | None:
    """Indices of ``keep`` blocks evenly spaced over ``n_blocks`` (first and last included);
    None when all blocks are kept."""
    if keep is None or keep >= n_blocks:
        return None
    return torch.linspace(0, n_blocks - 1, keep).round().long().unique()


def select_blocks(x: torch.Tensor, kwargs: dict, rows: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """The chosen calibration blocks of a layer input [B, T, K] and of any per-block kwarg
    (an attention mask [B, ...]); kwargs shared by all blocks (rotary tables [1, T, D]) pass."""
    if rows is None:
        return x, kwargs
    n = x.shape[0]

    def pick(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n and n > 1:
            return value[rows]
        if isinstance(value, tuple):
            return tuple(pick(v) for v in value)
        return value

    rows = rows.to(x.device)
    return x[rows], {k: pick(v) for k, v in kwargs.items()}
