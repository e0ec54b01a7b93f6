"""transformers (5.x) loading AutoAWQ checkpoints through GPT-QModel's kernels.

``transformers/quantizers/quantizer_awq.py`` hands the model to GPT-QModel's
``utils/importer.py`` ``hf_select_quant_linear_v2``, which picks one kernel class for the whole
model: the highest-priority class (``SUPPORTS_FORMATS[FORMAT.GEMM]``) whose bits, group sizes,
symmetry and device it supports. Each layer is then built with that class, and its in/out
feature rules (``SUPPORTS_IN_FEATURES_DIVISIBLE_BY`` / ``SUPPORTS_OUT_FEATURES_DIVISIBLE_BY``,
checked in ``nn_modules/qlinear/__init__.py`` ``BaseQuantLinear._validate``) must hold or the
load raises.

- CPU: ``torch_aten_kernel_awq.py`` ``TorchAtenAwqLinear`` (ATen ``_weight_int4pack_mm_for_cpu``),
  whose op takes group widths 32/64/128/256 only; no GEMV kernel exists for the CPU.
- CUDA, in priority order: ``machete_awq.py`` AwqMacheteLinear (sm90; in % 64, out % 128),
  ``marlin_awq.py`` AwqMarlinLinear (sm80+; groups -1/32/64/128, out % 8), ``exllamav2_awq.py``
  (4 bits; in % 32, out % 32), ``gemm_awq.py`` AwqGEMMLinear (groups -1/16/32/64/128).
  GEMV checkpoints get ``gemv_awq.py`` AwqGEMVLinear.

transformers shards quantised linears over ranks only through ``tp_plan``, which this profile
does not model: cells at tensor-parallel sizes above 1 are ``unknown``. compressed-tensors and
GPTQ checkpoints go through other integrations (compressed-tensors' own decompression, GPT-QModel
GPTQ kernels): not modelled either.
"""
from __future__ import annotations

from dataclasses import dataclass

from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import Part, Row

NAME = "transformers"
VERSIONS = ("5.17+gptqmodel-7.6",)
CPU_GROUPS = (32, 64, 128, 256)
G = "gptqmodel/nn_modules/qlinear/"
SRC_SELECT = Source("gptqmodel/utils/importer.py", "hf_select_quant_linear_v2 / select_quant_linear")
SRC_VALIDATE = Source(G + "__init__.py", "BaseQuantLinear._validate")
SRC_ATEN = Source(G + "torch_aten_kernel_awq.py", "TorchAtenAwqLinear (ATen _weight_int4pack_mm_for_cpu qGroupSize)")
SRC_GEMV = Source(G + "gemv_awq.py", "AwqGEMVLinear.SUPPORTS_DEVICES")
SRC_TP = Source("transformers/integrations/tensor_parallel.py", "tp_plan (not modelled)")


@dataclass(frozen=True)
class Kernel:
    """One GPT-QModel AWQ kernel class, as its class attributes declare it."""
    name: str
    file: str
    min_cap: int
    max_cap: int
    bits: tuple[int, ...]
    groups: tuple[int, ...]
    in_div: int
    out_div: int


# in GPT-QModel's priority order for FORMAT.GEMM on CUDA
CUDA_KERNELS = (
    Kernel("AwqMacheteLinear", "machete_awq.py", 90, 90, (4, 8), (-1, 32, 64, 128), 64, 128),
    Kernel("AwqMarlinLinear", "marlin_awq.py", 80, 1000, (4, 8), (-1, 32, 64, 128), 1, 8),
    Kernel("AwqExllamaV2Linear", "exllamav2_awq.py", 0, 1000, (4,), (-1, 32, 64, 128), 32, 32),
    Kernel("AwqGEMMLinear", "gemm_awq.py", 0, 1000, (4,), (-1, 16, 32, 64, 128), 1, 1),
)


def _selected(row: Row, cap: int) -> Kernel | None:
    """The model-wide class: the first whose bits, groups and capability fit (no shapes)."""
    return next((k for k in CUDA_KERNELS if k.min_cap <= cap <= k.max_cap and row.bits in k.bits
                 and row.group_size in k.groups), None)


def _cuda(row: Row, part: Part, cap: int) -> Cell:
    k = _selected(row, cap)
    if k is None:
        return Cell("refuses", None, "transformers.gptqmodel.select", SRC_SELECT,
                    f"no GPT-QModel AWQ kernel takes {row.bits} bits with group size {row.group_size}", "selection")
    src = Source(G + k.file, f"{k.name} SUPPORTS_IN/OUT_FEATURES_DIVISIBLE_BY")
    if part.k % k.in_div or part.n % k.out_div:
        return Cell("refuses", None, "transformers.gptqmodel.shape", src,
                    f"{k.name} (chosen for the model) needs in % {k.in_div} and out % {k.out_div}: "
                    f"this layer is {part.k} x {part.n}", "selection")
    preferred = next(c for c in CUDA_KERNELS if c.min_cap <= cap <= c.max_cap)
    why = "the first GPT-QModel kernel that fits (chosen once per model, without shapes)"
    if k is not preferred:
        why += f"; {preferred.name} does not take {row.bits} bits / group size {row.group_size}"
    return Cell("loads" if k is preferred else "fallback", k.name, "transformers.gptqmodel.select", src, why,
                "selection")


def _cpu(row: Row) -> Cell:
    if row.group not in CPU_GROUPS or row.bits != 4:
        return Cell("refuses", None, "transformers.cpu.groups", SRC_ATEN,
                    f"ATen int4pack takes 4 bits and group widths {CPU_GROUPS}, not {row.bits} bits / {row.group}",
                    "loader")
    return Cell("loads", "TorchAtenAwqLinear", "transformers.cpu.groups", SRC_ATEN, "ATen int4pack kernel", "loader")


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt not in ("gemm", "gemv"):
        return Cell("unknown", None, "transformers.format", SRC_SELECT,
                    f"{fmt} goes through another transformers integration: not modelled", "source")
    if tp > 1:
        return Cell("unknown", None, "transformers.tp", SRC_TP, "tensor parallelism (tp_plan) not modelled", "source")
    if fmt == "gemv":
        if device == "cpu":
            return Cell("refuses", None, "transformers.gemv", SRC_GEMV, "GPT-QModel has GEMV kernels for CUDA only",
                        "loader")
        return Cell("loads", "AwqGEMVLinear", "transformers.gemv", SRC_GEMV, "GEMV kernel", "source")
    return _cpu(row) if device == "cpu" else _cuda(row, part, int(device[2:]))
