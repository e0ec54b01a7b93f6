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
every group exactly ``group_size`` columns cannot be read either. Each config group has its own
``actorder``: a layer is checked against the group that targets it. compressed-tensors 0.19's
``QuantizationArgs`` refuses ``actorder: "group"`` ("has been removed. Consider using
actorder='weight'"), so transformers' loader with that release cannot read such a config while
vLLM still does (``ct.actorder-compat``, a warning); "weight" orders the quantisation but keeps
groups contiguous, with no ``weight_g_idx``.

Several config groups (a 4-bit and an 8-bit scheme, ``ct.targets``): every quantised linear must
be targeted by exactly one group (vLLM's ``find_matched_target`` and compressed-tensors'
``match_named_modules`` take a module's scheme from its group; an untargeted module gets no
quantised parameters and its packed tensors are not loaded, one targeted twice has a scheme that
depends on the reader), and a target that names a module (not a ``re:`` pattern or a class name)
must name a quantised linear of the checkpoint. Whether each module's codes have its group's
width is ``config.matches-tensors`` (``structure``, per group). vLLM fuses q/k/v and gate/up
into one linear and refuses shards with different schemes (``ct.fused-schemes``, a warning:
transformers loads them unfused).
"""
from __future__ import annotations

import torch

from awq_harness.conformance.declared import Declared
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.structure import Layer

CT_DTYPE_FIELDS = Rule("ct.dtype-fields", "compressed-tensors scale_dtype / zp_dtype agree with the stored tensors")
CT_DTYPE_FIELDS_COMPAT = Rule("ct.dtype-fields-compat",
                              "no scale_dtype / zp_dtype keys that readers with older compressed-tensors reject",
                              "warning")
CT_G_IDX = Rule("ct.g-idx", "compressed-tensors weight_g_idx is present exactly with actorder 'group' and valid")
CT_ACTORDER_COMPAT = Rule("ct.actorder-compat", "no actorder 'group', which compressed-tensors 0.19 refuses to read",
                          "warning")
CT_TARGETS = Rule("ct.targets", "compressed-tensors config groups target every quantised linear exactly once, "
                                "and name no module that is not one")
CT_FUSED_SCHEMES = Rule("ct.fused-schemes", "linears vLLM fuses (q/k/v, gate/up) share one config group", "warning")
FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))

TORCH_NAMES = {"torch.float16": "F16", "torch.bfloat16": "BF16", "torch.float32": "F32", "torch.float64": "F64",
               "float16": "F16", "bfloat16": "BF16", "float32": "F32"}
INTEGER_DTYPES = {"torch.int8", "torch.int16", "torch.int32", "torch.uint8", "int8", "int32"}
G_IDX = "weight_g_idx"


def _groups(config: dict | None) -> dict[str, dict]:
    """Each config group's weights scheme, by group name (compressed-tensors configs only)."""
    q = (config or {}).get("quantization_config")
    groups = q.get("config_groups") if isinstance(q, dict) and q.get("quant_method") == "compressed-tensors" else None
    if not isinstance(groups, dict):
        return {}
    return {str(key): g["weights"] for key, g in groups.items()
            if isinstance(g, dict) and isinstance(g.get("weights"), dict)}


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


def _actorder_findings(groups: dict[str, dict]) -> list[Finding]:
    return [CT_ACTORDER_COMPAT.finding(
        f"config_groups.{key} has actorder 'group': compressed-tensors 0.19 refuses it ('has been removed'), so "
        "transformers with that release cannot load the model, and vLLM 0.32 refuses it as well (loader.vllm)",
        "config.json")
        for key, w in groups.items() if w.get("actorder") == "group"]


def _g_idx_findings(decl: Declared, layers: list[Layer], reader) -> list[Finding]:
    out = []
    for layer in layers:
        actorder = decl.for_module(layer.prefix).actorder
        grouped = actorder == "group"
        info = layer.infos.get(G_IDX)
        name = f"{layer.prefix}.{G_IDX}"
        if info is None:
            if grouped:
                out.append(CT_G_IDX.finding("actorder 'group' but the layer stores no weight_g_idx: readers have "
                                            "no column order", layer.file(), name))
            continue
        if not grouped:
            out.append(CT_G_IDX.finding(
                f"weight_g_idx stored but actorder is {actorder!r}: readers build no g_idx parameter and "
                "read the columns in stored order", info.path.name, name))
            continue
        problem = _g_idx_problem(reader.get(info), layer)
        if problem:
            out.append(CT_G_IDX.finding(f"weight_g_idx: {problem}", info.path.name, name))
    return out


def _named_target(target: str) -> bool:
    return not target.startswith("re:") and "." in target


def target_findings(decl: Declared, quantised: list[str]) -> list[Finding]:
    """``ct.targets`` over every module with packed codes (``quantised``, full names)."""
    out = []
    for module in quantised:
        groups = decl.groups_of(module)
        if not groups:
            out.append(CT_TARGETS.finding("no config group targets it: readers build no quantised parameters for it "
                                          "and cannot load its packed tensors", "config.json", module))
        elif len(groups) > 1:
            out.append(CT_TARGETS.finding(f"targeted by {' and '.join(groups)}: its scheme depends on the reader",
                                          "config.json", module))
    present = set(quantised)
    for key, targets in decl.targets.items():
        missing = [t for t in targets if _named_target(t) and t not in present]
        if missing:
            out.append(CT_TARGETS.finding(f"config_groups.{key}.targets names {len(missing)} modules with no packed "
                                          f"tensors in the checkpoint, e.g. {missing[0]}", "config.json", missing[0]))
    return out


def fused_findings(decl: Declared, quantised: list[str]) -> list[Finding]:
    """Siblings of one vLLM fused linear (q/k/v, gate/up) in different config groups."""
    present, out = set(quantised), []
    for module in quantised:
        parent, _, leaf = module.rpartition(".")
        for shards in FUSED:
            if leaf != shards[0]:
                continue
            siblings = [f"{parent}.{s}" for s in shards if f"{parent}.{s}" in present]
            groups = {tuple(decl.groups_of(s)) for s in siblings}
            if len(groups) > 1:
                out.append(CT_FUSED_SCHEMES.finding(
                    f"{', '.join(s.rpartition('.')[2] for s in siblings)} are in different config groups: vLLM fuses "
                    "them into one linear and refuses the model ('vLLM requires all to use the same scheme')",
                    "config.json", parent))
    return out


def ct_field_findings(config: dict | None, layers: list[Layer], reader, decl: Declared | None = None,
                      quantised: list[str] = ()) -> list[Finding]:
    """Findings for compressed-tensors checkpoints; nothing for the other layouts. ``quantised``:
    every module with packed codes, well formed or not."""
    groups = _groups(config)
    if decl is None or decl.format != "compressed-tensors" or not groups:
        return []
    out = target_findings(decl, list(quantised)) + fused_findings(decl, list(quantised)) if len(groups) > 1 else []
    out += _actorder_findings(groups)
    layers = [layer for layer in layers if layer.layout.NAME == "compressed-tensors"]
    if not layers:
        return out
    for key, w in groups.items():
        mine = [layer for layer in layers if decl.groups_of(layer.prefix) == [key]] if len(groups) > 1 else layers
        out += _dtype_findings(w, mine)
    return out + _g_idx_findings(decl, layers, reader)
