"""What vLLM and transformers accept, from the loader code summarised in awq-format.md §3.

vLLM awq (§3.1): 4 bits; K_part % G == 0 and N_part % 8 == 0 per tensor-parallel rank; no
G = -1; GEMM shapes always (it ignores ``version``). vLLM awq_marlin (§3.2): transformers key
names, G in {-1, 32, 64, 128}, zero point, N_part % 64 == 0, K_part % 128 == 0; a layer that
fails falls back to awq. compressed-tensors WNA16 (§3.4): group -1 only with strategy
channel. transformers after PR #41567 (§3.6): version in {gemm, gemv, gemv_fast, llm-awq},
asymmetric only. Column-parallel layers split N across ranks, row-parallel layers split K.
"""
from __future__ import annotations

from conformance.declared import Declared
from conformance.findings import Finding
from conformance.structure import Layer

ROW_PARALLEL = ("o_proj", "down_proj", "out_proj", "fc2", "dense_4h_to_h", "wo", "w2", "c_proj", "attention.dense")
MARLIN_GROUPS = (-1, 32, 64, 128)
TP_SIZES = (2, 4, 8)
TRANSFORMERS_VERSIONS = ("gemm", "gemv", "gemv_fast", "llm-awq")
SHOWN = 4


def _row_parallel(prefix: str) -> bool:
    return prefix.endswith(ROW_PARALLEL)


def awq_ok(layer: Layer, tp: int) -> bool:
    n, k = layer.dims.n, layer.dims.k
    n_part, k_part = (n, k // tp) if _row_parallel(layer.prefix) else (n // tp, k)
    split_ok = (k % tp == 0) if _row_parallel(layer.prefix) else (n % tp == 0)
    return split_ok and k_part % layer.group_width == 0 and n_part % 8 == 0


def marlin_ok(layer: Layer, tp: int = 1) -> bool:
    n, k = layer.dims.n, layer.dims.k
    n_part, k_part = (n, k / tp) if _row_parallel(layer.prefix) else (n / tp, k)
    g = layer.group_width
    return n_part % 64 == 0 and k_part % 128 == 0 and (g == k or k_part % g == 0)


def _list(layers: list[Layer]) -> str:
    names = ", ".join(layer.prefix for layer in layers[:SHOWN])
    return names + (f" and {len(layers) - SHOWN} more" if len(layers) > SHOWN else "")


def _vllm(decl: Declared, layers: list[Layer], fmt: str) -> list[Finding]:
    out = []
    if fmt == "awq-gemv":
        out.append(Finding("loader.vllm", "warning", "vLLM reads every AWQ checkpoint as GEMM; GEMV tensors fail to load there", "config.json"))
    if fmt in ("awq-gemm", "awq-gemv") and decl.group_size == -1:
        bad = [lay for lay in layers if not marlin_ok(lay)]
        if bad:
            out.append(Finding("loader.vllm", "error", f"group size -1 needs the Marlin path, which rejects {_list(bad)}; the awq path cannot take G = -1", "config.json"))
    if fmt == "gptq" and decl.zero_point:
        out.append(Finding("loader.vllm", "warning", "asymmetric GPTQ (sym=false): vLLM's CPU build rejects it; GPU gptq_marlin needs gptq_v2 semantics", "config.json"))
    if fmt == "compressed-tensors" and decl.group_size == -1 and decl.zero_point:
        out.append(Finding("loader.vllm", "info", "per-channel asymmetric compressed-tensors: loaded by newer vLLM only", "config.json"))
    return out


def _marlin(decl: Declared, layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt not in ("awq-gemm", "compressed-tensors") or decl.group_size is None:
        return []
    if decl.group_size not in MARLIN_GROUPS:
        return [Finding("loader.marlin", "warning", f"group size {decl.group_size} is not a Marlin size {MARLIN_GROUPS}: vLLM uses the slower awq kernel", "config.json")]
    if fmt == "awq-gemm" and decl.zero_point is False:
        return [Finding("loader.marlin", "warning", "zero_point false is not an AWQ Marlin type: vLLM falls back to the awq kernel", "config.json")]
    bad = [lay for lay in layers if not marlin_ok(lay)]
    if bad:
        return [Finding("loader.marlin", "warning", f"{len(bad)} layers fail Marlin's N % 64 / K % 128 rule and run on the slower fallback: {_list(bad)}", bad[0].file())]
    return []


def _transformers(decl: Declared, raw_q: dict, fmt: str) -> list[Finding]:
    if fmt not in ("awq-gemm", "awq-gemv"):
        return []
    out = []
    if "w_bit" in raw_q or "q_group_size" in raw_q:
        out.append(Finding("loader.transformers", "error", "uses AutoAWQ's internal keys w_bit/q_group_size; transformers and vLLM awq_marlin need bits/group_size", "config.json"))
    if decl.zero_point is False:
        out.append(Finding("loader.transformers", "warning", "zero_point false: transformers' AWQ backend (GPT-QModel) hard-codes asymmetric kernels", "config.json"))
    if decl.raw_version is not None and decl.raw_version.lower() not in TRANSFORMERS_VERSIONS:
        out.append(Finding("loader.transformers", "error", f"version {decl.raw_version!r} is not accepted by current transformers ({', '.join(TRANSFORMERS_VERSIONS)})", "config.json"))
    return out


def _tensor_parallel(layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt not in ("awq-gemm", "compressed-tensors", "gptq") or not layers:
        return []
    valid = [tp for tp in TP_SIZES if all(awq_ok(lay, tp) for lay in layers)]
    out = [Finding("loader.tensor-parallel", "info", f"valid tensor-parallel sizes: {', '.join(map(str, [1] + valid))}")]
    for tp in TP_SIZES:
        bad = [lay for lay in layers if not awq_ok(lay, tp)]
        if bad:
            out.append(Finding("loader.tensor-parallel", "warning", f"at tensor-parallel {tp} vLLM rejects {_list(bad)} "
                               f"(a rank's in_features not divisible by the group size, or out_features by 8)", bad[0].file()))
            break
    return out


def loader_findings(decl: Declared, raw_q: dict, layers: list[Layer], fmt: str) -> list[Finding]:
    return _vllm(decl, layers, fmt) + _marlin(decl, layers, fmt) + _transformers(decl, raw_q, fmt) + _tensor_parallel(layers, fmt)
