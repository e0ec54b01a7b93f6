"""compressed-tensors' newer weight-scheme fields: ``scale_dtype``, ``zp_dtype`` and act-order.

``scale_dtype`` / ``zp_dtype`` (``config_groups.*.weights``) name the dtypes compressed-tensors
allocates the scale and zero-point parameters in (``initialize_qparams`` in its
``quantization/lifecycle/initialize.py``). Releases whose ``QuantizationArgs`` predate the two
fields forbid extra keys, so a reader that pins one (vLLM images that ship compressed-tensors
0.12.2, for example) refuses the whole config with "Extra inputs are not permitted": a
compatibility warning. A ``scale_dtype`` that is not the stored ``weight_scale`` dtype, or a
``zp_dtype`` that is not an integer dtype, contradicts the tensors: an error.

Act-order (``weights.actorder``): with "group", every quantised linear stores ``weight_g_idx``
[K] int32, the group of each input column, and vLLM builds that parameter only then
(``CompressedTensorsWNA16``: ``has_g_idx = actorder == ActivationOrdering.GROUP``). With "weight"
or none, columns are in group order and no ``weight_g_idx`` is written. A ``weight_g_idx`` the
config does not announce is dropped by such readers, which then read every permuted column with
the wrong group's scale; an announced one that is missing, out of range, or that does not give
every group exactly ``group_size`` columns cannot be read either.
"""
from __future__ import annotations

import torch

from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.structure import Layer

CT_DTYPE_FIELDS = Rule("ct.dtype-fields", "compressed-tensors scale_dtype / zp_dtype agree with the stored tensors")
CT_DTYPE_FIELDS_COMPAT = Rule("ct.dtype-fields-compat",
                              "no scale_dtype / zp_dtype keys that readers with older compressed-tensors reject",
                              "warning")
CT_G_IDX = Rule("ct.g-idx", "compressed-tensors weight_g_idx is present exactly with actorder 'group' and valid")

TORCH_NAMES = {"torch.float16": "F16", "torch.bfloat16": "BF16", "torch.float32": "F32", "torch.float64": "F64",
               "float16": "F16", "bfloat16": "BF16", "float32": "F32"}
INTEGER_DTYPES = {"torch.int8", "torch.int16", "torch.int32", "torch.uint8", "int8", "int32"}
G_IDX = "weight_g_idx"


def _weights(config: dict | None) -> dict:
    q = (config or {}).get("quantization_config")
    groups = q.get("config_groups") if isinstance(q, dict) and q.get("quant_method") == "compressed-tensors" else None
    group = next(iter(groups.values()), None) if isinstance(groups, dict) and groups else None
    weights = group.get("weights") if isinstance(group, dict) else None
    return weights if isinstance(weights, dict) else {}


def _scale_dtypes(layers: list[Layer]) -> set[str]:
    return {layer.infos[layer.layout.SCALES].dtype for layer in layers}


def _dtype_findings(w: dict, layers: list[Layer]) -> list[Finding]:
    out = []
    present = [key for key in ("scale_dtype", "zp_dtype") if key in w]
    if present:
        out.append(CT_DTYPE_FIELDS_COMPAT.finding(
            f"weights declare {' and '.join(present)}: compressed-tensors releases before these fields forbid extra "
            "keys, so readers that pin one refuse the config ('Extra inputs are not permitted')", "config.json"))
    scale, zp = w.get("scale_dtype"), w.get("zp_dtype")
    if scale is not None:
        stored = _scale_dtypes(layers)
        if TORCH_NAMES.get(str(scale)) is None:
            out.append(CT_DTYPE_FIELDS.finding(f"weights.scale_dtype {str(scale)[:40]!r} is not a float dtype",
                                               "config.json"))
        elif stored and stored != {TORCH_NAMES[str(scale)]}:
            out.append(CT_DTYPE_FIELDS.finding(
                f"weights.scale_dtype {scale} but weight_scale is stored as {'/'.join(sorted(stored))}", "config.json"))
    if zp is not None and str(zp) not in INTEGER_DTYPES:
        out.append(CT_DTYPE_FIELDS.finding(f"weights.zp_dtype {str(zp)[:40]!r} is not an integer dtype",
                                           "config.json"))
    return out


def _g_idx_problem(g_idx: torch.Tensor, layer: Layer) -> str | None:
    groups = layer.dims.k // layer.group_width
    if g_idx.numel() and (int(g_idx.min()) < 0 or int(g_idx.max()) >= groups):
        return f"groups span [{int(g_idx.min())}, {int(g_idx.max())}], outside [0, {groups - 1}]"
    counts = torch.bincount(g_idx.to(torch.int64), minlength=groups)
    if bool((counts != layer.group_width).any()):
        bad = int((counts != layer.group_width).nonzero()[0])
        return f"group {bad} has {int(counts[bad])} columns, not the group size {layer.group_width}"
    return None


def _g_idx_findings(w: dict, layers: list[Layer], reader) -> list[Finding]:
    grouped = w.get("actorder") == "group"
    out = []
    for layer in layers:
        info = layer.infos.get(G_IDX)
        name = f"{layer.prefix}.{G_IDX}"
        if info is None:
            if grouped:
                out.append(CT_G_IDX.finding("actorder 'group' but the layer stores no weight_g_idx: readers have "
                                            "no column order", layer.file(), name))
            continue
        if not grouped:
            out.append(CT_G_IDX.finding(
                f"weight_g_idx stored but actorder is {w.get('actorder')!r}: readers build no g_idx parameter and "
                "read the columns in stored order", info.path.name, name))
            continue
        problem = _g_idx_problem(reader.get(info), layer)
        if problem:
            out.append(CT_G_IDX.finding(f"weight_g_idx: {problem}", info.path.name, name))
    return out


def ct_field_findings(config: dict | None, layers: list[Layer], reader) -> list[Finding]:
    """Findings for compressed-tensors checkpoints; nothing for the other layouts."""
    layers = [layer for layer in layers if layer.layout.NAME == "compressed-tensors"]
    w = _weights(config)
    if not layers or not w:
        return []
    return _dtype_findings(w, layers) + _g_idx_findings(w, layers, reader)
