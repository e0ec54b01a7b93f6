"""Group tensors into quantised layers, pick the layout, and check each layer's tensor set,
shapes, dtypes and divisibility against the layout and the declared config.

A layer that passes becomes a ``Layer`` (safe to unpack); one that fails gets findings and
is left out of the numeric checks, so a malformed tensor can never reach the unpackers.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from awq_harness.awq_ref.formats import FORMATS
from awq_harness.awq_ref.formats.dims import Dims
from awq_harness.awq_ref.formats.fit import expected_shapes, fits, suffixes
from awq_harness.conformance.declared import Declared
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.safeheader import TensorInfo

CONFIG_MATCHES_TENSORS = Rule("config.matches-tensors",
                              "quantization_config agrees with the tensors (bits, group size, zero point, format)")
TENSORS_COMPLETE = Rule("tensors.complete", "every quantised linear has its complete tensor set")
TENSORS_SHAPE = Rule("tensors.shape", "every quantised tensor has the shape its layout requires")
TENSORS_DTYPE = Rule("tensors.dtype", "every quantised tensor has the dtype its layout requires")
LAYOUT_DIVISIBILITY = Rule("layout.divisibility",
                           "in_features divisible by the group size, out_features by the pack factor")

Layout = ModuleType  # a layout module of awq_ref.formats (see its FORMATS)

MIN_GROUP_WIDTH = 8


@dataclass
class Layer:
    prefix: str
    layout: Layout
    dims: Dims
    group_width: int
    infos: dict[str, TensorInfo]
    bits: int = 4  # the code width its tensors pack (compressed-tensors: 4 or 8)

    def file(self) -> str:
        return self.infos[self.layout.PACKED].path.name


def shapes_of(infos: dict[str, TensorInfo]) -> dict[str, tuple[int, ...]]:
    return {s: info.shape for s, info in infos.items()}


def group_by_prefix(tensors: dict[str, TensorInfo], packed: str) -> dict[str, dict[str, TensorInfo]]:
    prefixes = {name[: -len(packed) - 1] for name in tensors if name.endswith("." + packed)}
    out: dict[str, dict[str, TensorInfo]] = {p: {} for p in prefixes}
    for name, info in tensors.items():
        prefix, _, suffix = name.rpartition(".")
        if prefix in out:
            out[prefix][suffix] = info
    return out


def _own_suffixes(fmt: Layout) -> set[str]:
    """Suffixes no other layout uses: one of them in a layer names its layout."""
    return suffixes(fmt) - set().union(*(suffixes(other) for other in FORMATS.values() if other is not fmt))


def _first_layers(tensors: dict[str, TensorInfo]) -> dict[str, tuple[str, dict[str, TensorInfo]]]:
    """Per layout whose packed tensor occurs: the (prefix, tensors) of its first layer."""
    out = {}
    for name, fmt in FORMATS.items():
        layers = group_by_prefix(tensors, fmt.PACKED)
        if layers:
            out[name] = (first := sorted(layers)[0], layers[first])
    return out


def _guess_layout(tensors: dict[str, TensorInfo], values: dict, gw: int | None) -> Layout | None:
    """A layout with a suffix of its own in its first layer; else the first that fits; else the
    first whose packed tensor occurs (formats in FORMATS order, the de facto GEMM first)."""
    first = _first_layers(tensors)
    for name, (_, infos) in first.items():
        if _own_suffixes(FORMATS[name]) & set(infos):
            return FORMATS[name]
    for name, (prefix, infos) in first.items():
        if fits(FORMATS[name], shapes_of(infos), values.get(prefix, {}), gw):
            return FORMATS[name]
    return FORMATS[next(iter(first))] if first else None


def declared_width(decl: Declared, k: int) -> int | None:
    if decl.group_size is None:
        return None
    return k if decl.group_size == -1 else decl.group_size


def choose_layout(decl: Declared, tensors: dict[str, TensorInfo], values: dict) -> tuple[Layout | None, list[Finding]]:
    """The declared layout, unless the tensors plainly have another one (a mislabelled file)."""
    declared = FORMATS.get(decl.format) if decl.format else None
    guessed = _guess_layout(tensors, values, decl.group_size if decl.group_size and decl.group_size > 0 else None)
    if declared is None:
        return guessed, []
    layers = group_by_prefix(tensors, declared.PACKED)
    if not layers or guessed is None or guessed is declared:
        return declared, []
    first = sorted(layers)[0]
    gw = declared_width(decl, 0) if decl.group_size and decl.group_size > 0 else None
    first_values = values.get(first, {})
    shapes = shapes_of(layers[first])
    if fits(declared, shapes, first_values, gw) or not fits(guessed, shapes, first_values, gw):
        return declared, []
    return guessed, [CONFIG_MATCHES_TENSORS.finding(
        f"config declares {declared.NAME} but the tensors have the {guessed.NAME} layout "
        f"(e.g. {first}); loaders will read them with the wrong shapes", "config.json")]


def _fail(layer_file: str, rule: Rule, message: str, tensor: str, severity: str | None = None) -> Finding:
    return rule.finding(message, layer_file, tensor, severity)


def _check_set(prefix: str, layout: Layout, infos: dict, decl: Declared, f: str) -> list[Finding]:
    required = set(layout.REQUIRED) | (set(layout.ASYMMETRIC_ONLY) if decl.zero_point else set())
    out = [_fail(f, TENSORS_COMPLETE, f"missing {prefix}.{s}: the layer cannot be loaded", f"{prefix}.{s}")
           for s in sorted(required - set(infos))]
    if decl.zero_point is False:
        out += [_fail(f, CONFIG_MATCHES_TENSORS, f"config says symmetric but the layer has {s}; vLLM will ignore it",
                      f"{prefix}.{s}") for s in layout.ASYMMETRIC_ONLY if s in infos]
    out += [_fail(f, TENSORS_COMPLETE, f"no {s}; some {layout.NAME} loaders require it", f"{prefix}.{s}", "warning")
            for s in layout.RECOMMENDED if s not in infos]
    out += [_fail(f, TENSORS_COMPLETE, f"unexpected tensor for a {layout.NAME} layer", f"{prefix}.{s}", "warning")
            for s in sorted(set(infos) - suffixes(layout) - {"weight"})]
    if "weight" in infos:
        out.append(_fail(f, TENSORS_COMPLETE,
                         "both a float weight and packed codes: loaders will take one and drop the other",
                         f"{prefix}.weight"))
    return out


def _check_dtypes(prefix: str, layout: Layout, infos: dict, f: str) -> list[Finding]:
    out = []
    for s, info in sorted(infos.items()):
        allowed = layout.DTYPES.get(s)
        if s == "bias" and not info.is_float:
            out.append(_fail(f, TENSORS_DTYPE, f"bias is {info.dtype}, expected a float dtype", info.name))
        if allowed and info.dtype not in allowed:
            out.append(_fail(f, TENSORS_DTYPE,
                             f"{s} is {info.dtype}; the {layout.NAME} layout stores {'/'.join(sorted(allowed))}",
                             info.name))
        elif s == "weight_shape" and info.dtype == "I32":
            out.append(_fail(f, TENSORS_DTYPE, "weight_shape is int32; vLLM declares int64", info.name, "warning"))
    return out


def _check_divisible(prefix: str, layout: Layout, dims: Dims, gw: int, f: str) -> list[Finding]:
    out = []
    if dims.k % gw:
        out.append(_fail(f, LAYOUT_DIVISIBILITY, f"in_features {dims.k} is not divisible by group size {gw}",
                         f"{prefix}.{layout.PACKED}"))
    return out + [_fail(f, LAYOUT_DIVISIBILITY, reason, f"{prefix}.{s}")
                  for s, reason in layout.alignment(dims.n, dims.k)]


def _check_shapes(prefix: str, layout: Layout, infos: dict, dims: Dims, gw: int, f: str) -> list[Finding]:
    try:
        want = expected_shapes(layout, dims, gw)
    except ValueError as err:
        return [_fail(f, TENSORS_SHAPE,
                      f"no valid {layout.NAME} shapes for in={dims.k} out={dims.n} group={gw}: {err}",
                      f"{prefix}.{layout.PACKED}")]
    out = []
    for s, info in sorted(infos.items()):
        if s not in want or tuple(want[s]) == info.shape:
            continue
        unpacked_zero_point = s == "weight_zero_point" and info.dtype == "I8"
        if unpacked_zero_point and info.shape == (dims.n, want["weight_scale"][1]):
            out.append(_fail(f, TENSORS_SHAPE,
                             "unpacked int8 zero point (compressed-tensors before PR #296); current vLLM expects "
                             "packed int32 [N/8, groups]", info.name, "warning"))
            continue
        out.append(_fail(f, TENSORS_SHAPE,
                         f"shape {list(info.shape)}, expected {list(want[s])} for in={dims.k} out={dims.n} group={gw}",
                         info.name))
    return out


def readable_bits(layout: Layout) -> tuple[int, ...]:
    """The code widths the verifier reads in this layout (4 unless the layout packs more)."""
    return getattr(layout, "PACKED_BITS", (4,))


def _width(decl: Declared, layout: Layout, dims: Dims, prefix: str, f: str) -> tuple[int | None, list[Finding]]:
    """The group width the tensors imply, cross-checked with the config's."""
    declared, implied = declared_width(decl, dims.k), dims.group_width()
    if decl.bits is not None and decl.bits != dims.bits:
        return None, [_fail(f, CONFIG_MATCHES_TENSORS,
                            f"tensors pack {dims.pack:g} codes per int32 ({dims.bits:g} bits) "
                            f"but config declares {decl.bits} bits", prefix)]
    if dims.bits not in readable_bits(layout):
        widths = "/".join(str(b) for b in readable_bits(layout))
        return None, [_fail(f, TENSORS_SHAPE,
                            f"tensors pack {dims.pack:g} codes per int32; {layout.NAME} is read at {widths} bits",
                            prefix)]
    if implied and declared and implied != declared:
        return None, [_fail(f, CONFIG_MATCHES_TENSORS,
                            f"config group size {decl.group_size} but the scales imply {implied} "
                            f"(in={dims.k}, {dims.groups} groups)", prefix)]
    gw = implied or declared
    if not gw:
        return None, [_fail(f, TENSORS_SHAPE,
                            f"cannot tell the group size (in={dims.k}, groups={dims.groups})", prefix)]
    if gw < MIN_GROUP_WIDTH:
        return None, [_fail(f, LAYOUT_DIVISIBILITY,
                            f"group width {gw} < {MIN_GROUP_WIDTH}: no loader supports it (and its zeros would be as "
                            "large as the codes)", prefix)]
    return gw, []


def check_layer(prefix: str, layout: Layout, infos: dict[str, TensorInfo], values: dict,
                decl: Declared) -> tuple[Layer | None, list[Finding]]:
    """``decl``: the whole config; the layer is checked against its own config group's scheme."""
    f = infos[layout.PACKED].path.name
    decl = decl.for_module(prefix)
    findings = _check_set(prefix, layout, infos, decl, f) + _check_dtypes(prefix, layout, infos, f)
    dims = layout.dims(shapes_of(infos), values)
    if dims is None or dims.n <= 0 or dims.k <= 0:
        return None, findings + [_fail(f, TENSORS_SHAPE, f"{layout.PACKED} is not a non-empty 2-D tensor",
                                       f"{prefix}.{layout.PACKED}")]
    gw, bad = _width(decl, layout, dims, prefix, f)
    if gw is None:
        return None, findings + bad
    findings += _check_divisible(prefix, layout, dims, gw, f)
    if not findings or all(x.severity != "error" for x in findings):
        findings += _check_shapes(prefix, layout, infos, dims, gw, f)
    ok = all(x.severity != "error" for x in findings)
    return (Layer(prefix, layout, dims, gw, infos, round(dims.bits)) if ok else None), findings
