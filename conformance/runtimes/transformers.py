"""transformers (5.x) loading AutoAWQ checkpoints through GPT-QModel's kernels.

``transformers/quantizers/quantizer_awq.py`` hands the model to GPT-QModel's
``utils/importer.py`` ``hf_select_quant_linear_v2``, which picks one kernel class for the whole
model: the highest-priority class (``SUPPORTS_FORMATS[FORMAT.GEMM]``) whose bits, group sizes,
symmetry and device it supports. Each layer is then built with that class, and its in/out
feature rules (``SUPPORTS_IN_FEATURES_DIVISIBLE_BY`` / ``SUPPORTS_OUT_FEATURES_DIVISIBLE_BY``,
checked in ``nn_modules/qlinear/__init__.py`` ``BaseQuantLinear._validate``) must hold or the
load raises.

- CPU, in priority order: ``torch_aten_kernel_awq.py`` TorchAtenAwqLinear (4 bits, groups
  16/32/64/128), ``torch_fused_awq.py`` TorchFusedAwqLinear (4 bits, also -1), both on ATen's
  ``_weight_int4pack_mm_for_cpu``, which raises unless the group width is 32/64/128/256
  (``qGroupSize``); then ``torch_awq.py`` AwqTorchLinear (plain torch, the slow fallback, 2-8 bits).
  No GEMV kernel exists for the CPU.
- CUDA, in priority order: ``swordfish.py`` AwqSwordfishLinear (Blackwell), ``machete_awq.py``
  AwqMacheteLinear (sm90; in % 64, out % 128), ``marlin_awq.py`` AwqMarlinLinear (sm80+; out % 8),
  ``exllamav2_awq.py`` (4 bits; in % 32, out % 32), ``gemm_awq.py`` AwqGEMMLinear, the Triton GEMM,
  then AwqTorchLinear. The capabilities are those of each class's ``validate_device``.
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
G = "gptqmodel/nn_modules/qlinear/"
SRC_SELECT = Source("gptqmodel/utils/importer.py", "hf_select_quant_linear_v2 / select_quant_linear")
SRC_VALIDATE = Source(G + "__init__.py", "BaseQuantLinear._validate")
SRC_ATEN = Source(G + "torch_aten_kernel_awq.py", "TorchAtenAwqLinear (ATen _weight_int4pack_mm_for_cpu qGroupSize)")
SRC_GEMV = Source(G + "gemv_awq.py", "AwqGEMVLinear.SUPPORTS_DEVICES")
SRC_TP = Source("transformers/integrations/tensor_parallel.py", "tp_plan (not modelled)")


@dataclass(frozen=True)
class Kernel:
    """One GPT-QModel AWQ kernel class, as its class attributes declare it (``SUPPORTS_*``)."""
    name: str
    file: str
    min_cap: int       # CUDA classes: the capability its validate_device needs; CPU classes: 0
    bits: tuple[int, ...]
    groups: tuple[int, ...]
    in_div: int
    out_div: int
    int4pack: bool = False  # runs ATen's int4pack op, which takes only INT4PACK_GROUPS widths


# AUTO_BACKEND_KERNEL_MAPPING[METHOD.AWQ][FORMAT.GEMM], in priority order, per device family
CUDA_KERNELS = (
    Kernel("AwqSwordfishLinear", "swordfish.py", 100, (4,), (-1, 32, 64, 128), 64, 64),
    Kernel("AwqMacheteLinear", "machete_awq.py", 90, (4, 8), (-1, 32, 64, 128), 64, 128),
    Kernel("AwqMarlinLinear", "marlin_awq.py", 80, (4, 8), (-1, 32, 64, 128), 1, 8),
    Kernel("AwqExllamaV2Linear", "exllamav2_awq.py", 0, (4,), (-1, 32, 64, 128), 32, 32),
    Kernel("AwqGEMMLinear", "gemm_awq.py", 0, (4,), (-1, 16, 32, 64, 128), 1, 1),
    Kernel("AwqGEMMTritonLinear", "gemm_awq_triton.py", 0, (4,), (-1, 32, 64, 128), 32, 8),
    Kernel("AwqTorchLinear", "torch_awq.py", 0, (2, 3, 4, 5, 6, 7, 8), (-1, 16, 32, 64, 128), 1, 8),
)
CPU_KERNELS = (
    Kernel("TorchAtenAwqLinear", "torch_aten_kernel_awq.py", 0, (4,), (16, 32, 64, 128), 1, 1, True),
    Kernel("TorchFusedAwqLinear", "torch_fused_awq.py", 0, (4,), (-1, 16, 32, 64, 128), 1, 1, True),
    Kernel("AwqTorchLinear", "torch_awq.py", 0, (2, 3, 4, 5, 6, 7, 8), (-1, 16, 32, 64, 128), 1, 8),
)
INT4PACK_GROUPS = (32, 64, 128, 256)
# classes whose validate_once needs a compiled GPT-QModel extension: without it selection moves on
EXTENSION = {"AwqSwordfishLinear": "swordfish", "AwqMacheteLinear": "machete", "AwqMarlinLinear": "marlin",
             "AwqExllamaV2Linear": "exllamav2"}


def selected(row: Row, kernels: tuple[Kernel, ...], cap: int = 0) -> Kernel | None:
    """The model-wide class: the first whose bits, groups and capability fit (no shapes)."""
    return next((k for k in kernels if k.min_cap <= cap and row.bits in k.bits and row.group_size in k.groups),
                None)


def _kernel_cell(row: Row, part: Part, kernels: tuple[Kernel, ...], cap: int, checked: str) -> Cell:
    k = selected(row, kernels, cap)
    if k is None:
        return Cell("refuses", None, "transformers.gptqmodel.select", SRC_SELECT,
                    f"no GPT-QModel AWQ kernel takes {row.bits} bits with group size {row.group_size}", checked)
    src = Source(G + k.file, f"{k.name} SUPPORTS_* and _validate")
    built = f" (if its {EXTENSION[k.name]} extension is built)" if k.name in EXTENSION else ""
    if part.k % k.in_div or part.n % k.out_div:
        return Cell("refuses", None, "transformers.gptqmodel.shape", src,
                    f"{k.name} (chosen once for the model{built}) needs in % {k.in_div} and out % {k.out_div}: "
                    f"this layer is {part.k} x {part.n}", checked)
    if k.int4pack and row.group not in INT4PACK_GROUPS:
        return Cell("refuses", None, "transformers.cpu.int4pack", SRC_ATEN,
                    f"{k.name} runs ATen int4pack, which takes group widths {INT4PACK_GROUPS}, not {row.group}",
                    checked)
    preferred = next(c for c in kernels if c.min_cap <= cap)
    why = f"the first GPT-QModel kernel that fits{built} (chosen once per model, without shapes)"
    if k is not preferred:
        why += f"; {preferred.name} does not take {row.bits} bits / group size {row.group_size}"
    return Cell("loads" if k is preferred else "fallback", k.name, "transformers.gptqmodel.select", src, why, checked)


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
    if device == "cpu":
        return _kernel_cell(row, part, CPU_KERNELS, 0, "loader")
    return _kernel_cell(row, part, CUDA_KERNELS, int(device[2:]), "selection")
