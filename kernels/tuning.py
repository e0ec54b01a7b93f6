"""Which configuration a kernel launch uses when the caller gives none.

Under the interpreter (CPU): the wrapper's ``default_config``, the one configuration it
keeps. On a GPU: the list ``kernels.configs`` holds for the device's architecture, this
kernel and M's bucket, fixed for the layer; with autotuning on (``AWQ_KERNEL_AUTOTUNE``,
default "1") every entry is timed once per (kernel, architecture, bucket, layer, dtype) with
``triton.testing.do_bench`` and the fastest is kept for the process, as Triton's own
autotuner does; with it off, the list's first entry.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

from awq_harness.kernels import configs, runtime
from awq_harness.kernels.checks import LayerShape

AUTOTUNE = os.environ.get("AWQ_KERNEL_AUTOTUNE", "1") != "0"
_chosen: dict[tuple, configs.Config] = {}


def device_arch(device: torch.device) -> str:
    return configs.arch_of_capability(*torch.cuda.get_device_capability(device))


def _time_ms(fn: Callable[[], object]) -> float:
    import triton.testing
    return float(triton.testing.do_bench(fn, warmup=5, rep=20, return_mode="median"))


def fastest(entries: list[configs.Config], launch: Callable[[configs.Config], object],
            timer: Callable[[Callable[[], object]], float] = _time_ms) -> configs.Config:
    """The entry whose launch the timer finds fastest (the first among equals)."""
    return min(entries, key=lambda c: timer(lambda: launch(c)))


def pick(kernel: str, m: int, layer: LayerShape, x: torch.Tensor, fallback: Callable,
         launch: Callable[[configs.Config], object] | None = None, arch: str | None = None,
         timer: Callable | None = None) -> configs.Config:
    """The configuration for this launch (``fallback(m, layer)`` where no architecture list applies)."""
    if arch is None and (runtime.INTERPRETED or x.device.type != "cuda"):
        return fallback(m, layer)
    arch = arch or device_arch(x.device)
    top, _ = configs.bucket(kernel, m, arch)
    entries = configs.candidates(arch, kernel, m, layer)
    if launch is None or not AUTOTUNE or len(entries) == 1:
        return entries[0]
    key = (kernel, arch, top, layer, x.dtype)
    if key not in _chosen:
        _chosen[key] = fastest(entries, launch, timer or _time_ms)
    return _chosen[key]
