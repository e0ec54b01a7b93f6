"""Where the heavy work runs: ``--device auto|cpu|cuda|cuda:N`` and the Python API's ``device=``.

``auto`` is the current CUDA device when torch sees one, else the CPU. Asking for CUDA where
torch has none is a ``DeviceError``, raised before anything is read or written; the CLI prints
it as one line and exits 2, like a ``HarnessError`` (primitives sit in the lowest layer beside
``awq_ref.errors`` and do not import it; ``quant.QuantError`` is the same).
A resolved CUDA device always carries its index (``cuda:0``), so every tensor the harness
makes for it compares equal to the ones already there.

The layer loop (``awq_ref.pipeline.layer_loop``) moves one decoder layer and its calibration
activations onto the device at a time; the rest of the model stays where it lives (CPU, or
``meta`` when streamed from disk). ``peak_memory`` is what the summaries and results report.
"""
from __future__ import annotations

import re

import torch
from torch import nn

AUTO = "auto"
CPU = torch.device("cpu")
CHOICES = "auto|cpu|cuda|cuda:N"
_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(ValueError):
    """A device that cannot be used here: the message is one line naming the request."""


def parse_device(spec: str) -> tuple[str, int | None]:
    """``spec`` as (kind, index); only ``cuda`` takes an index."""
    match = _SPEC.match(str(spec).strip().lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"--device {spec!r}: expected {CHOICES}")
    index = match.group(2)
    return match.group(1), None if index is None else int(index)


def _no_cuda_reason() -> str:
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU build)"
    return f"torch {torch.__version__} has {build} and sees no CUDA device"


def resolve_device(spec: str) -> torch.device:
    """``auto|cpu|cuda|cuda:N`` as a ``torch.device``; CUDA asked for but absent: ``DeviceError``."""
    kind, index = parse_device(spec)
    if kind == "cpu" or (kind == AUTO and not torch.cuda.is_available()):
        return CPU
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: {_no_cuda_reason()}")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceError(f"--device {spec}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", torch.cuda.current_device() if index is None else index)


def device_of(module: nn.Module) -> torch.device:
    """Where ``module``'s weights live (the first tensor not on ``meta``); CPU when all are on meta."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return CPU


def to_device(value, device: torch.device):
    """Tensors in ``value`` (nested in tuples, lists and dicts) on ``device``; anything else as is."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict | None:
    """Peak bytes allocated on a CUDA device since the last reset (None on the CPU)."""
    if device.type != "cuda":
        return None
    return {"device": str(device), "name": torch.cuda.get_device_name(device),
            "peak_bytes": int(torch.cuda.max_memory_allocated(device))}


def describe_peak(peak: dict | None) -> str | None:
    if peak is None:
        return None
    return f"peak device memory: {peak['peak_bytes'] / 2**20:.1f} MiB on {peak['device']} ({peak['name']})"
