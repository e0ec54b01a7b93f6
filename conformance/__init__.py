"""Conformance verifier for AWQ-family checkpoints (AutoAWQ GEMM/GEMV, compressed-tensors
pack-quantized, GPTQ): ``verify(path)`` returns a ``Report`` of ``Finding``s with rule ids.

Front ends: ``awq-harness verify`` (awq_ref/cli/verify.py) and the pytest plugin
``pytest --checkpoint PATH`` (conformance/plugin.py, conformance/test_checkpoint.py).

The names below are imported on first use, so importing the package (as the pytest plugin
does in every run) costs nothing: torch is loaded only when a checkpoint is verified.
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # name -> the module that defines it
    "verify": "awq_harness.conformance.runner",
    "Report": "awq_harness.conformance.findings",
    "Finding": "awq_harness.conformance.findings",
    "RULES": "awq_harness.conformance.rules",
    "SCHEMA": "awq_harness.conformance.findings",
    "SCHEMA_VERSION": "awq_harness.conformance.findings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
