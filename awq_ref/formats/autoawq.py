"""AutoAWQ's ``quantization_config``, shared by its two layouts (they differ only in ``version``).

    {quant_method: "awq", bits, group_size (-1 per channel), zero_point, version: "gemm"|"gemv"}

``modules_to_not_convert`` (which linears stay float) is not about the layout; writers add it.
"""
from __future__ import annotations

from awq_harness.awq_ref.primitives.quant import QuantSpec


def quantization_config(version: str, spec: QuantSpec) -> dict:
    return {"quant_method": "awq", "bits": spec.bits, "group_size": spec.group_size,
            "zero_point": spec.zero_point, "version": version}
