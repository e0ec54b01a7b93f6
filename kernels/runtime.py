"""Where Triton can run, and the buffers kernels write into.

``INTERPRETED`` is frozen at import: ``@triton.jit`` picks the interpreter when the kernel is
defined, so setting TRITON_INTERPRET later has no effect on kernels already defined.

``poisoned()`` makes every buffer a kernel wrapper allocates (outputs and split-K partial
sums) start as NaN instead of uninitialised memory, so an element a kernel forgets to write
shows up as NaN in the result. Tests turn it on; production leaves it off (no fill cost).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
_poison = False


def triton_can_run(device: torch.device | str) -> bool:
    """True if a Triton kernel can be launched on tensors living on ``device``."""
    kind = torch.device(device).type
    return (kind == "cuda" and torch.cuda.is_available()) or (kind == "cpu" and INTERPRETED)


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.empty, or a NaN-filled tensor inside ``poisoned()``."""
    if _poison:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


@contextmanager
def poisoned() -> Iterator[None]:
    global _poison
    previous, _poison = _poison, True
    try:
        yield
    finally:
        _poison = previous
