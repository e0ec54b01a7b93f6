"""Group tensors into quantised layers, pick the layout, and check each layer's tensor set,
shapes, dtypes and divisibility against the layout and the declared config.

A layer that passes becomes a ``Layer`` (safe to unpack); one that fails gets findings and
is left out of the numeric checks, so a malformed tensor can never reach the unpackers.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance.declared import Declared
from conformance.findings import Finding
from conformance.layouts import CT, GEMM, GEMV, GPTQ, LAYOUTS, Dims, Layout, expected_shapes, fits
from conformance.safeheader import TensorInfo

MIN_GROUP_WIDTH = 8


@dataclass
class Layer:
    prefix: str
    layout: Layout
    dims: Dims
    group_width: int
    infos: dict[str, TensorInfo]

    def file(self) -> str:
        return self.infos[self.layout.packed].path.name


def group_by_prefix(tensors: dict[str, TensorInfo], packed: str) -> dict[str, dict[str, TensorInfo]]:
    prefixes = {name[: -len(packed) - 1] for name in tensors if name.endswith("." + packed)}
    out: dict[str, dict[str, TensorInfo]] = {p: {} for p in prefixes}
    for name, info in tensors.items():
        prefix, _, suffix = name.rpartition(".")
        if prefix in out:
            out[prefix][suffix] = info
    return out


def _guess_layout(tensors: dict[str, TensorInfo], values: dict, gw: int | None) -> Layout | None:
    if any(n.endswith(".weight_packed") for n in tensors):
        return CT
    layers = group_by_prefix(tensors, "qweight")
    if not layers:
        return None
    sample = layers[sorted(layers)[0]]
    if "g_idx" in sample:
        return GPTQ
    for layout in (GEMM, GEMV, GPTQ):
        if fits(layout, sample, values.get(sorted(layers)[0], {}), gw):
            return layout
    return GEMM


def declared_width(decl: Declared, k: int) -> int | None:
    if decl.group_size is None:
        return None
    return k if decl.group_size == -1 else decl.group_size


def choose_layout(decl: Declared, tensors: dict[str, TensorInfo], values: dict) -> tuple[Layout | None, list[Finding]]:
    """The declared layout, unless the tensors plainly have another one (a mislabelled file)."""
    declared = LAYOUTS.get(decl.format) if decl.format else None
    guessed = _guess_layout(tensors, values, decl.group_size if decl.group_size and decl.group_size > 0 else None)
    if declared is None:
        return guessed, []
    layers = group_by_prefix(tensors, declared.packed)
    if not layers or guessed is None or guessed is declared:
        return declared, []
    first = sorted(layers)[0]
    gw = declared_width(decl, 0) if decl.group_size and decl.group_size > 0 else None
    first_values = values.get(first, {})
    if fits(declared, layers[first], first_values, gw) or not fits(guessed, layers[first], first_values, gw):
        return declared, []
    return guessed, [Finding("config.matches-tensors", "error",
                             f"config declares {declared.name} but the tensors have the {guessed.name} layout "
                             f"(e.g. {first}); loaders will read them with the wrong shapes", "config.json")]


def _fail(layer_file: str, rule: str, message: str, tensor: str, severity: str = "error") -> Finding:
    return Finding(rule, severity, message, layer_file, tensor)


def _check_set(prefix: str, layout: Layout, infos: dict, decl: Declared, f: str) -> list[Finding]:
    required = set(layout.required)
    if layout is CT and decl.zero_point:
        required.add("weight_zero_point")
    out = [_fail(f, "tensors.complete", f"missing {prefix}.{s}: the layer cannot be loaded", f"{prefix}.{s}")
           for s in sorted(required - set(infos))]
    if layout is CT and decl.zero_point is False and "weight_zero_point" in infos:
        out.append(_fail(f, "config.matches-tensors",
                         "config says symmetric but the layer has weight_zero_point; vLLM will ignore it",
                         f"{prefix}.weight_zero_point"))
    if layout is GPTQ and "g_idx" not in infos:
        out.append(_fail(f, "tensors.complete", "no g_idx; some GPTQ loaders require it", f"{prefix}.g_idx", "warning"))
    out += [_fail(f, "tensors.complete", f"unexpected tensor for a {layout.name} layer", f"{prefix}.{s}", "warning")
            for s in sorted(set(infos) - layout.suffixes - {"weight"})]
    if "weight" in infos:
        out.append(_fail(f, "tensors.complete",
                         "both a float weight and packed codes: loaders will take one and drop the other",
                         f"{prefix}.weight"))
    return out


def _check_dtypes(prefix: str, layout: Layout, infos: dict, f: str) -> list[Finding]:
    out = []
    for s, info in sorted(infos.items()):
        allowed = layout.dtypes.get(s)
        if s == "bias" and not info.is_float:
            out.append(_fail(f, "tensors.dtype", f"bias is {info.dtype}, expected a float dtype", info.name))
        if allowed and info.dtype not in allowed:
            out.append(_fail(f, "tensors.dtype",
                             f"{s} is {info.dtype}; the {layout.name} layout stores {'/'.join(sorted(allowed))}",
                             info.name))
        elif layout is CT and s == "weight_shape" and info.dtype == "I32":
            out.append(_fail(f, "tensors.dtype", "weight_shape is int32; vLLM declares int64", info.name, "warning"))
    return out


def _check_divisible(prefix: str, layout: Layout, dims: Dims, gw: int, f: str) -> list[Finding]:
    out = []
    if dims.k % gw:
        out.append(_fail(f, "layout.divisibility", f"in_features {dims.k} is not divisible by group size {gw}",
                         f"{prefix}.{layout.packed}"))
    if layout.pack_axis_out and dims.n % 8:
        out.append(_fail(f, "layout.divisibility", f"out_features {dims.n} is not divisible by the pack factor 8",
                         f"{prefix}.{layout.packed}"))
    if layout in (GEMV, GPTQ) and dims.k % 8:
        out.append(_fail(f, "layout.divisibility", f"in_features {dims.k} is not divisible by the pack factor 8",
                         f"{prefix}.{layout.packed}"))
    if layout is GPTQ and dims.n % 8:
        out.append(_fail(f, "layout.divisibility",
                         f"out_features {dims.n} is not divisible by 8 (qzeros packing)", f"{prefix}.qzeros"))
    return out


def _check_shapes(prefix: str, layout: Layout, infos: dict, dims: Dims, gw: int, f: str) -> list[Finding]:
    try:
        want = expected_shapes(layout, dims, gw)
    except ValueError as err:
        return [_fail(f, "tensors.shape",
                      f"no valid {layout.name} shapes for in={dims.k} out={dims.n} group={gw}: {err}",
                      f"{prefix}.{layout.packed}")]
    out = []
    for s, info in sorted(infos.items()):
        if s not in want or tuple(want[s]) == info.shape:
            continue
        unpacked_zero_point = s == "weight_zero_point" and info.dtype == "I8"
        if layout is CT and unpacked_zero_point and info.shape == (dims.n, want["weight_scale"][1]):
            out.append(_fail(f, "tensors.shape",
                             "unpacked int8 zero point (compressed-tensors before PR #296); current vLLM expects "
                             "packed int32 [N/8, groups]", info.name, "warning"))
            continue
        out.append(_fail(f, "tensors.shape",
                         f"shape {list(info.shape)}, expected {list(want[s])} for in={dims.k} out={dims.n} group={gw}",
                         info.name))
    return out


def _width(decl: Declared, dims: Dims, prefix: str, f: str) -> tuple[int | None, list[Finding]]:
    """The group width the tensors imply, cross-checked with the config's."""
    declared, implied = declared_width(decl, dims.k), dims.group_width()
    if decl.bits is not None and decl.bits != dims.bits:
        return None, [_fail(f, "config.matches-tensors",
                            f"tensors pack {dims.pack:g} codes per int32 ({dims.bits:g} bits) "
                            f"but config declares {decl.bits} bits", prefix)]
    if dims.bits != 4:
        return None, [_fail(f, "tensors.shape",
                            f"tensors pack {dims.pack:g} codes per int32; only 4-bit layouts are read", prefix)]
    if implied and declared and implied != declared:
        return None, [_fail(f, "config.matches-tensors",
                            f"config group size {decl.group_size} but the scales imply {implied} "
                            f"(in={dims.k}, {dims.groups} groups)", prefix)]
    gw = implied or declared
    if not gw:
        return None, [_fail(f, "tensors.shape",
                            f"cannot tell the group size (in={dims.k}, groups={dims.groups})", prefix)]
    if gw < MIN_GROUP_WIDTH:
        return None, [_fail(f, "layout.divisibility",
                            f"group width {gw} < {MIN_GROUP_WIDTH}: no loader supports it (and its zeros would be as "
                            "large as the codes)", prefix)]
    return gw, []


def check_layer(prefix: str, layout: Layout, infos: dict[str, TensorInfo], values: dict,
                decl: Declared) -> tuple[Layer | None, list[Finding]]:
    f = infos[layout.packed].path.name
    findings = _check_set(prefix, layout, infos, decl, f) + _check_dtypes(prefix, layout, infos, f)
    dims = layout.dims(infos, values)
    if dims is None or dims.n <= 0 or dims.k <= 0:
        return None, findings + [_fail(f, "tensors.shape", f"{layout.packed} is not a non-empty 2-D tensor",
                                       f"{prefix}.{layout.packed}")]
    gw, bad = _width(decl, dims, prefix, f)
    if gw is None:
        return None, findings + bad
    findings += _check_divisible(prefix, layout, dims, gw, f)
    if not findings or all(x.severity != "error" for x in findings):
        findings += _check_shapes(prefix, layout, infos, dims, gw, f)
    ok = all(x.severity != "error" for x in findings)
    return (Layer(prefix, layout, dims, gw, infos) if ok else None), findings
