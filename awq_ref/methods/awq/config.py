"""Every choice the AWQ search makes, as one record that goes into the checkpoint metadata.

Defaults are AutoAWQ's (``AwqQuantizer``): a 20-point grid with duo scaling, clip search
on (grid 20, shrink up to 0.5, 512 sampled tokens), q/k never clipped, and the scale-search
loss over every calibration token.

``loss_blocks`` is our one speed option beyond AutoAWQ: the scale-search loss (20 forwards of
each attention / MLP per layer, ~85% of the run) is computed on that many calibration blocks,
evenly spaced, instead of all of them. The activation statistics s_X (and so the candidate
scales) and the clip search still see every block. The cost of the search then no longer
grows with the calibration size beyond ``loss_blocks`` (measured in tests/peers/test_peer_speed.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from awq_harness.awq_ref.primitives.compute_dtype import COMPUTE_DTYPES


@dataclass(frozen=True)
class AwqSearchConfig:
    n_grid: int = 20             # alpha = i / n_grid for i < n_grid (alpha = 1 is never tried)
    duo_scaling: bool = True     # s = x^a / (w^(1-a) + 1e-4) (AutoAWQ default); False: s = x^a
    clip: bool = True            # AutoAWQ apply_clip; llm-compressor has no clip search
    clip_grid: int = 20          # shrink factors 1 - i / clip_grid ...
    max_shrink: float = 0.5      # ... for i < max_shrink * clip_grid
    clip_tokens: int = 512       # tokens sampled (every T // clip_tokens-th) for the clip loss
    compute_dtype: str = "float32"  # forwards during the search (resolve "auto" with awq_ref.primitives.compute_dtype)
    loss_blocks: int | None = None  # calibration blocks in the scale-search loss; None: all (AutoAWQ)

    def __post_init__(self):
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {self.compute_dtype!r}")
        if self.n_grid < 1 or self.clip_grid < 1 or not 0 < self.max_shrink < 1:
            raise ValueError("n_grid, clip_grid >= 1 and 0 < max_shrink < 1 are required")
        if self.loss_blocks is not None and self.loss_blocks < 1:
            raise ValueError(f"loss_blocks must be >= 1 or None (all blocks), got {self.loss_blocks}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.compute_dtype]

    def to_json(self) -> dict:
        return asdict(self)
