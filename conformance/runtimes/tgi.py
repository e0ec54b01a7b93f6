"""Text Generation Inference's kernel choice for AutoAWQ GEMM, GEMV, GPTQ and compressed-tensors
WNA16 linears, per tensor-parallel rank and device, read from the server code of TGI 3.3
(huggingface/text-generation-inference, ``server/text_generation_server/``, the 3.x line: the
Marlin kernels come from ``utils/kernels.py`` ``load_kernel``, kernels-community/quantization,
and ``FlashLlamaAttention`` checks the kv heads). TGI is not installable here, so every cell is
``source``.

The loader is chosen once per model (``utils/quantization.py`` ``get_loader`` after
``_get_quantizer_config``), so a layer the chosen kernel cannot take makes the load raise:
there is no per-layer fallback as in vLLM.

- AWQ and GPTQ (``quant_method`` awq / gptq): ``layers/marlin/gptq.py`` ``can_use_gptq_marlin``
  picks ``GPTQMarlinWeightsLoader`` on CUDA with capability 80+, 4 or 8 bits, group -1/32/64/128
  (the list vLLM's Marlin takes too) and, for GPTQ, ``sym`` (AWQ always passes: a ``zero_point``
  false AWQ checkpoint is read as uint4b8 with its zero 8, which is what it stores).
  ``repack_gptq_for_marlin`` then needs ``K_part % group``, and ``GPTQMarlinLinear.__init__``
  ``_check_valid_shape`` one thread configuration: ``K_part % 128`` and merged ``N_part % 64``, or
  ``K_part % 64`` and ``N_part % 128`` (vLLM's ``verify_marlin_supports_shape`` takes only the
  first). GPTQ act-order (``desc_act``) loads on Marlin at any TP where each rank's inputs hold
  whole groups (the repack's check): row-parallel ranks keep all scales, ``is_full_k`` false.
- Otherwise ``layers/gptq/__init__.py`` ``GPTQWeightsLoader``: for AWQ the AWQ GEMM kernel
  (``layers/awq/quantize/qmodule.py`` ``WQLinear``, 4 bits only); for GPTQ Exllama v2 when 4 bits,
  no ``desc_act`` and capability 80+ (``CAN_EXLLAMA``), else the Triton ``QuantLinear``
  (``layers/gptq/triton.py``: 2, 4 or 8 bits).
- GEMV: ``_get_quantizer_config`` never reads ``version``; every AWQ checkpoint is read with
  GEMM shapes (the Marlin repack asserts them in ``layers/marlin/util.py`` ``unpack_cols``).
- compressed-tensors (``layers/compressed_tensors/loader.py``
  ``CompressedTensorsLoader._create_loader_for_group``): pack-quantized int 4 / 8 bits go to
  ``wna16_int.py`` ``WNA16IntLoader`` (other widths raise), Marlin only (``repack_gptq_for_marlin``,
  ``layers/marlin/util.py`` ``_check_marlin_kernels``: CUDA, capability 80+). Its readers ask for
  ``{prefix}.g_idx`` (actorder "group") and, column-parallel, ``{prefix}.qzeros`` (asymmetric),
  names compressed-tensors does not write (``weight_g_idx``, ``weight_zero_point``): those
  loads raise.
- CPU: the Intel build (``SYSTEM == "ipex"``) has no Marlin; AWQ runs ``layers/awq/quantize/ipex.py``
  ``WQLinear`` and GPTQ ``layers/gptq/ipex.py`` ``QuantLinear`` (IPEX weight-only int4: 4 bits
  only); compressed-tensors needs Marlin and raises.

Sharding (``utils/weights.py`` ``Weights.get_sharded``): every sharded tensor's split dimension
must divide by the ranks, or an assertion fails. Row-parallel linears shard the packed codes
along K (GPTQ / compressed-tensors pack 32 / bits input rows in one int32) and, grouped and
without act-order, the scales and zeros along their groups: a group straddling two ranks is
refused, never misread. Column-parallel AWQ (and GPTQ off Marlin, which reads the zeros) shard
int32 words packing 32 / bits output columns. Heads
(``models/custom_modeling/flash_llama_modeling.py`` ``FlashLlamaAttention.__init__``): the
attention heads and the kv heads must both divide by the ranks; TGI never replicates a kv head,
so where ``shapes.partition`` keeps one kv head per rank the q/k/v row refuses.

Not modelled (``unknown``): asymmetric compressed-tensors row-parallel linears (read under the
right names, their zero points reach Marlin without a Marlin layout conversion: whether that
computes right needs a GPU); a ``weight_g_idx`` without actorder "group" (TGI ignores it). Not
modelled at all: kernel-internal limits of Exllama, the AWQ GEMM kernel, Triton and IPEX; ROCm;
``--quantize`` overrides (``gptq`` for an AWQ checkpoint converts it). The harness's rows flag
act-order from ``weight_g_idx`` only, so a GPTQ ``desc_act`` checkpoint's cells are those of
``desc_act`` false. TGI decides with the config's group size, model-wide; a row knows only its
own group width, so a layer whose K is at most the group size reads as group -1 here (TGI would
shard its single scale column and refuse it at TP > 1, and a config group outside
-1/32/64/128 moves every layer off Marlin).
"""
from __future__ import annotations

from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import KV, Model, Part, Row, partition
from awq_harness.conformance.runtimes.vllm import MARLIN_GROUPS, straddles

NAME = "tgi"
VERSIONS = ("3.3",)
MARLIN_BITS = (4, 8)
MARLIN_CAP = 80
THREAD_CONFIGS = ((128, 64), (64, 128))  # (K_part, N_part) multiples of _check_valid_shape
TRITON_BITS = (2, 4, 8)
INT4_ONLY = 4  # AWQ WQLinear, IPEX weight-only kernels
CT_BITS = (4, 8)

S = "server/text_generation_server/"
SRC_LOADER = Source(S + "utils/quantization.py", "get_loader, _get_quantizer_config")
SRC_CAN_MARLIN = Source(S + "layers/marlin/gptq.py", "can_use_gptq_marlin")
SRC_MARLIN_SHAPE = Source(S + "layers/marlin/gptq.py", "GPTQMarlinLinear.__init__ (_check_valid_shape)")
SRC_REPACK = Source(S + "layers/marlin/gptq.py", "repack_gptq_for_marlin")
SRC_MARLIN_ONLY = Source(S + "layers/marlin/util.py", "_check_marlin_kernels")
SRC_AWQ = Source(S + "layers/awq/quantize/qmodule.py", "WQLinear.__init__")
SRC_GPTQ = Source(S + "layers/gptq/__init__.py", "GPTQWeightsLoader (use_exllama)")
SRC_TRITON = Source(S + "layers/gptq/triton.py", "QuantLinear.__init__")
SRC_AWQ_IPEX = Source(S + "layers/awq/quantize/ipex.py", "WQLinear.__init__")
SRC_GPTQ_IPEX = Source(S + "layers/gptq/ipex.py", "QuantLinear.__init__")
SRC_CT = Source(S + "layers/compressed_tensors/loader.py", "CompressedTensorsLoader._create_loader_for_group")
WNA16 = S + "layers/compressed_tensors/wna16_int.py"
SRC_WNA16 = Source(WNA16, "WNA16IntLoader.get_multi_weights_col, get_weights_row")
SRC_WNA16_COL = Source(WNA16, "WNA16IntLoader.get_multi_weights_col")
SRC_WNA16_ROW = Source(WNA16, "WNA16IntLoader.get_weights_row")
SRC_SHARD = Source(S + "utils/weights.py", "Weights.get_sharded")
SRC_HEADS = Source(S + "models/custom_modeling/flash_llama_modeling.py", "FlashLlamaAttention.__init__")
SRC_GEMV = Source(S + "utils/quantization.py", "_get_quantizer_config (GEMM shapes only)")


def _cell(verdict: str, kernel: str | None, rule: str, source: Source, why: str) -> Cell:
    return Cell(verdict, kernel, rule, source, why, "source")


def heads_cell(why: str | None, device: str) -> Cell:
    if why:
        return _cell("refuses", None, "tgi.tp.heads", SRC_HEADS, why)
    return _cell("loads", None, "tgi.tp.heads", SRC_HEADS,
                 "the attention heads split (the kv-head half of the check is on the q/k/v rows)")


def desc_act(row: Row, fmt: str) -> bool:
    """Act-order as TGI's loaders see it: compressed-tensors actorder "group" (``WNA16IntLoader``),
    GPTQ ``desc_act`` (flagged on a row by its g_idx)."""
    if fmt == "compressed-tensors":
        return "group" in row.config_actorders
    return fmt == "gptq" and row.g_idx


def thread_shape(part: Part) -> str | None:
    """``_check_valid_shape``: why no Marlin thread configuration fits the rank's (K, merged N)."""
    if any(part.k % k == 0 and part.merged_n % n == 0 for k, n in THREAD_CONFIGS):
        return None
    return (f"no GPTQ-Marlin thread configuration for ({part.merged_n}, {part.k}): "
            "K, N must divide by (128, 64) or (64, 128)")


def kv_replicated(row: Row, part: Part, tp: int) -> bool:
    """Whether the harness's split kept a kv head per rank, which TGI never does."""
    return any(kind in KV for kind, _ in row.merged) and partition(row, tp, Model()).merged_n != part.merged_n


def _pack(row: Row) -> int:
    return 32 // row.bits


def _row_shard(row: Row, tp: int, fmt: str, act_order: bool) -> str | None:
    """get_weights_row: the codes shard along K, grouped scales and zeros along their groups."""
    packed = row.k if fmt == "gemm" else row.k // _pack(row)  # AWQ packs along N, GPTQ / CT along K
    if packed % tp:
        return f"{row.kind}: {packed} packed input rows do not shard over {tp} ranks"
    if not act_order and row.group_size != -1 and (row.k // row.group) % tp:
        return f"{row.kind}: {row.k // row.group} groups of scales do not shard over {tp} ranks"
    return None


def _column_shard(row: Row, tp: int) -> str | None:
    """get_multi_weights_col: int32 words packing 32 / bits output columns shard along N."""
    for kind, n in row.merged:
        if (n // _pack(row)) % tp:
            return f"{kind}: {n // _pack(row)} packed output words do not shard over {tp} ranks"
    return None


def _shard(row: Row, tp: int, fmt: str, device: str) -> Cell | None:
    if tp == 1:
        return None
    if row.row_parallel:
        why = _row_shard(row, tp, fmt, desc_act(row, fmt))
    else:
        packs_n = fmt == "gemm" or (fmt == "gptq" and not _marlin_ok(row, fmt, device))
        why = _column_shard(row, tp) if packs_n else None
    return _cell("refuses", None, "tgi.tp.shard", SRC_SHARD, why) if why else None


def _cap(device: str) -> int:
    return 0 if device == "cpu" else int(device[2:])


def _marlin_ok(row: Row, fmt: str, device: str) -> bool:
    """can_use_gptq_marlin (AWQ, GPTQ) on the device."""
    return (_cap(device) >= MARLIN_CAP and row.bits in MARLIN_BITS and row.group_size in MARLIN_GROUPS
            and (row.symmetric or fmt == "gemm"))


def _no_marlin(row: Row, fmt: str, device: str) -> str:
    if _cap(device) < MARLIN_CAP:
        return f"{device}: Marlin needs CUDA capability {MARLIN_CAP}"
    if row.bits not in MARLIN_BITS:
        return f"{row.bits}-bit weights (Marlin takes {MARLIN_BITS})"
    if row.group_size not in MARLIN_GROUPS:
        return f"group size {row.group_size} not in {MARLIN_GROUPS}"
    return f"asymmetric {fmt} (Marlin takes asymmetric AWQ only)"


def _marlin(row: Row, part: Part, tp: int, fmt: str) -> Cell:
    why = straddles(part, row)
    if why:
        return _cell("refuses", None, "tgi.marlin.repack", SRC_REPACK, why)
    why = thread_shape(part)
    if why:
        return _cell("refuses", None, "tgi.marlin.shape", SRC_MARLIN_SHAPE, why)
    note = "Marlin takes the rank's shape"
    if desc_act(row, fmt) and row.row_parallel and tp > 1:
        note += "; act-order over sharded input features: is_full_k false"
    src = SRC_REPACK if fmt == "compressed-tensors" else SRC_CAN_MARLIN  # CT skips can_use_gptq_marlin
    return _cell("loads", "gptq-marlin", "tgi.marlin", src, note)


def _awq_kernel(row: Row, why: str) -> Cell:
    if row.bits != INT4_ONLY:
        return _cell("refuses", None, "tgi.awq.kernel", SRC_AWQ, f"{why}; the AWQ GEMM kernel takes 4 bits only")
    return _cell("fallback", "awq (WQLinear)", "tgi.awq.kernel", SRC_AWQ, why)


def _gptq_kernel(row: Row, device: str, why: str) -> Cell:
    if row.bits == INT4_ONLY and not desc_act(row, "gptq") and _cap(device) >= MARLIN_CAP:
        return _cell("fallback", "exllamav2", "tgi.gptq.exllama", SRC_GPTQ, why)
    if row.bits not in TRITON_BITS:
        return _cell("refuses", None, "tgi.gptq.triton", SRC_TRITON, f"{why}; Triton takes {TRITON_BITS} bits")
    return _cell("fallback", "triton QuantLinear", "tgi.gptq.triton", SRC_TRITON,
                 why + ("; desc_act disables Exllama" if desc_act(row, "gptq") else ""))


def _compressed(row: Row) -> Cell | None:
    """What WNA16IntLoader refuses, or leaves to a GPU to confirm, on every device."""
    if row.bits not in CT_BITS:
        return _cell("refuses", None, "tgi.ct.scheme", SRC_CT, f"no compressed-tensors loader for {row.bits}-bit int")
    if desc_act(row, "compressed-tensors"):
        return _cell("refuses", None, "tgi.ct.actorder", SRC_WNA16,
                     "actorder 'group': the loader reads {prefix}.g_idx, the file stores weight_g_idx")
    if not row.symmetric and not row.row_parallel:
        return _cell("refuses", None, "tgi.ct.zero-point", SRC_WNA16_COL,
                     "asymmetric: the loader reads {prefix}.qzeros, the file stores weight_zero_point")
    if not row.symmetric:
        return _cell("unknown", None, "tgi.ct.zero-point", SRC_WNA16_ROW,
                     "asymmetric: weight_zero_point reaches Marlin without a Marlin layout conversion")
    if row.g_idx:
        return _cell("unknown", None, "tgi.ct.g-idx", SRC_WNA16,
                     "weight_g_idx without actorder 'group': TGI ignores it")
    return None


def _cpu(row: Row, fmt: str) -> Cell:
    if fmt == "compressed-tensors":
        return _cell("refuses", None, "tgi.ct.marlin-only", SRC_MARLIN_ONLY,
                     "compressed-tensors WNA16 runs on Marlin only (CUDA, capability 80+)")
    src = SRC_AWQ_IPEX if fmt == "gemm" else SRC_GPTQ_IPEX
    if row.bits != INT4_ONLY:
        return _cell("refuses", None, "tgi.cpu.ipex", src, f"IPEX weight-only kernels take 4 bits, not {row.bits}")
    return _cell("loads", "ipex woq int4", "tgi.cpu.ipex", src, "IPEX weight-only int4 (no Marlin on CPU)")


def _gpu(row: Row, part: Part, tp: int, device: str, fmt: str) -> Cell:
    if fmt == "compressed-tensors":
        if _cap(device) < MARLIN_CAP:
            return _cell("refuses", None, "tgi.ct.marlin-only", SRC_MARLIN_ONLY,
                         f"{device}: Marlin needs CUDA capability {MARLIN_CAP}")
        if row.group_size not in MARLIN_GROUPS:
            return _cell("refuses", None, "tgi.marlin.repack", SRC_REPACK,
                         f"group size {row.group_size} not in {MARLIN_GROUPS}")
        return _marlin(row, part, tp, fmt)
    if _marlin_ok(row, fmt, device):
        return _marlin(row, part, tp, fmt)
    why = f"can_use_gptq_marlin fails: {_no_marlin(row, fmt, device)}"
    return _awq_kernel(row, why) if fmt == "gemm" else _gptq_kernel(row, device, why)


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt == "gemv":
        return _cell("refuses", None, "tgi.awq.gemv", SRC_GEMV,
                     "TGI reads every AWQ checkpoint as GEMM: GEMV tensors have the wrong shapes")
    if fmt not in ("gemm", "gptq", "compressed-tensors"):
        return _cell("unknown", None, "tgi.scope", SRC_LOADER, f"format {fmt!r}: not modelled")
    if part.why:
        return _cell("refuses", None, "tgi.tp.split", SRC_SHARD, part.why)
    if kv_replicated(row, part, tp):
        return _cell("refuses", None, "tgi.tp.kv-heads", SRC_HEADS,
                     f"fewer kv heads than {tp} ranks: num_key_value_heads must divide by the ranks")
    refused = _compressed(row) if fmt == "compressed-tensors" else None
    refused = refused or _shard(row, tp, fmt, device)
    if refused:
        return refused
    return _cpu(row, fmt) if device == "cpu" else _gpu(row, part, tp, device, fmt)
