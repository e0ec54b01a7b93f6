"""Conformance verifier for AWQ-family checkpoints (AutoAWQ GEMM/GEMV, compressed-tensors
pack-quantized, GPTQ): ``verify(path)`` returns a ``Report`` of ``Finding``s with rule ids.

Front ends: ``awq-harness verify`` (awq_ref/cli/verify.py) and ``pytest conformance
--checkpoint PATH`` (conformance/conftest.py, conformance/test_checkpoint.py).
"""
from conformance.findings import SCHEMA, SCHEMA_VERSION, Finding, Report
from conformance.rules import RULES
from conformance.runner import verify

__all__ = ["verify", "Report", "Finding", "RULES", "SCHEMA", "SCHEMA_VERSION"]
