"""Golden checkpoints: small committed checkpoints with manifests that pin format bytes.

Load one by name: ``golden.load("llama-gemm-g64-rtn")``; list them with ``golden.names()``.
"""
from __future__ import annotations

from pathlib import Path


def names() -> list[str]:
    from awq_harness.golden.specs import GOLDENS

    return [spec.name for spec in GOLDENS]


def path(name: str) -> Path:
    from awq_harness.golden.build import golden_dir

    if name not in names():
        raise KeyError(f"no golden named {name!r}; known: {names()}")
    return golden_dir(name)


def load(name: str):
    """The golden checkpoint as a model from our loader (float32, reference forward)."""
    from awq_harness.awq_ref.checkpoint.awq import load_checkpoint

    return load_checkpoint(path(name))
