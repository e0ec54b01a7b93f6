"""SGLang's AutoAWQ paths on CUDA (``python/sglang/srt/layers/quantization/awq.py``).

``AWQMarlinConfig.is_awq_marlin_compatible``: quant_method awq, 4 or 8 bits, ``bits``,
``group_size`` and ``zero_point`` present, ``check_marlin_supported`` (a zero point, group
-1/32/64/128), minimum capability 80. Per layer ``AWQMarlinConfig.get_quant_method`` runs
``marlin_utils.py`` ``check_marlin_supports_layer``, SGLang's copy of vLLM's strict rule (no tile
padding): ``N_part % 64``, ``K_part % 128``, ``K_part % group``. A layer that fails falls back
to ``AWQLinearMethod`` (``awq_dequantize`` + matmul, the slow path, 4 bits), which raises unless
``K_part % group == 0`` and ``N_part % 8 == 0``; its group size is used as is, so -1 does not work there.
Not modelled (``unknown``): compressed-tensors and GPTQ, SGLang's CPU and NPU backends. Every
cell comes from the source only: SGLang is not installed in any environment here.
"""
from __future__ import annotations

from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import Part, Row
from awq_harness.conformance.runtimes.vllm import MARLIN_GROUPS, marlin_tiles

NAME = "sglang"
VERSIONS = ("0.5",)
MIN_CAP = 80
S = "python/sglang/srt/layers/quantization/"
SRC_COMPAT = Source(S + "awq.py", "AWQMarlinConfig.is_awq_marlin_compatible")
SRC_LAYER = Source(S + "marlin_utils.py", "check_marlin_supports_layer")
SRC_AWQ = Source(S + "awq.py", "AWQLinearMethod.create_weights")
SRC_SPLIT = Source("python/sglang/srt/layers/linear.py", "QKVParallelLinear, Column/RowParallelLinear")
SRC_HEADS = Source("python/sglang/srt/configs/model_config.py", "ModelConfig (heads % tp_size)")


def heads_cell(why: str | None, device: str) -> Cell:
    if why:
        return Cell("refuses", None, "sglang.tp.heads", SRC_HEADS, why, "source")
    return Cell("loads", None, "sglang.tp.heads", SRC_HEADS, "the attention heads split", "source")


def _awq(row: Row, part: Part, verdict: str, rule: str, src: Source, why: str) -> Cell:
    if row.bits != 4 or row.group_size == -1 or part.k % row.group or part.merged_n % 8:
        return Cell("refuses", None, "sglang.awq.shape", SRC_AWQ,
                    f"AWQLinearMethod needs 4 bits, a group size and K_part % group, N_part % 8 ({why})", "source")
    return Cell(verdict, "awq (awq_dequantize + matmul)", rule, src, why, "source")


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt not in ("gemm", "gemv") or device == "cpu":
        return Cell("unknown", None, "sglang.scope", SRC_COMPAT, f"{fmt} on {device}: not modelled", "source")
    if fmt == "gemv":
        return Cell("refuses", None, "sglang.awq.gemv", SRC_AWQ, "GEMM shapes only: GEMV tensors do not fit", "source")
    if part.why:
        return Cell("refuses", None, "sglang.tp.split", SRC_SPLIT, part.why, "source")
    cap = int(device[2:])
    if row.symmetric or row.group_size not in MARLIN_GROUPS or row.bits not in (4, 8) or cap < MIN_CAP:
        return _awq(row, part, "fallback", "sglang.awq-marlin.config", SRC_COMPAT, "not awq_marlin compatible")
    why = marlin_tiles(part, row)
    if why:
        return _awq(row, part, "fallback", "sglang.marlin.shape", SRC_LAYER, f"Marlin refuses the layer: {why}")
    return Cell("loads", "awq_marlin (Marlin)", "sglang.marlin.shape", SRC_LAYER, "Marlin takes the rank's shape",
                "source")
