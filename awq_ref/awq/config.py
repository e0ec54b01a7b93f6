"""Every choice the AWQ search makes, as one record that goes into the checkpoint metadata.

Defaults are AutoAWQ's (``AwqQuantizer``): a 20-point grid with duo scaling, clip search
on (grid 20, shrink up to 0.5, 512 sampled tokens), q/k never clipped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class AwqSearchConfig:
    n_grid: int = 20             # alpha = i / n_grid for i < n_grid (alpha = 1 is never tried)
    duo_scaling: bool = True     # s = x^a / (w^(1-a) + 1e-4) (AutoAWQ default); False: s = x^a
    clip: bool = True            # AutoAWQ apply_clip; llm-compressor has no clip search
    clip_grid: int = 20          # shrink factors 1 - i / clip_grid ...
    max_shrink: float = 0.5      # ... for i < max_shrink * clip_grid
    clip_tokens: int = 512       # tokens sampled (every T // clip_tokens-th) for the clip loss
    compute_dtype: str = "float32"  # forwards during the search; never float16 on CPU

    def __post_init__(self):
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, got {self.compute_dtype!r}")
        if self.n_grid < 1 or self.clip_grid < 1 or not 0 < self.max_shrink < 1:
            raise ValueError("n_grid, clip_grid >= 1 and 0 < max_shrink < 1 are required")

    @property
    def torch_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.compute_dtype]

    def to_json(self) -> dict:
        return asdict(self)
