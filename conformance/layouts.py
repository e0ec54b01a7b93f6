"""The four layouts the verifier reads, described by what their tensors must look like.

Each ``Layout`` names its packed tensor, its tensor suffixes and allowed dtypes, and infers a
layer's (out N, in K, number of groups, pack factor) from tensor shapes alone, so the
config's claims can be checked against the tensors rather than trusted. Shapes are then
compared with the packing module's own ``shapes`` table (awq_ref.formats).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from awq_ref.formats import awq_gemm, awq_gemv, compressed_tensors, gptq
from conformance.safeheader import TensorInfo

FLOAT_SCALES = {"F16", "BF16"}


@dataclass(frozen=True)
class Dims:
    n: int  # out_features
    k: int  # in_features
    groups: int | None  # None when the tensors do not say (GEMV pads its scales)
    pack: float  # codes per int32 word (8 for 4 bits)

    @property
    def bits(self) -> float:
        return 32 / self.pack if self.pack else 0

    def group_width(self) -> int | None:
        if not self.groups or self.k % self.groups:
            return None
        return self.k // self.groups


@dataclass(frozen=True)
class Layout:
    name: str
    packed: str
    required: tuple[str, ...]
    dtypes: dict[str, set[str]]
    module: object
    dims: Callable[[dict[str, TensorInfo], dict[str, object]], Dims | None]
    pack_axis_out: bool  # codes packed along N (True) or K (False); the pack factor divides that axis

    @property
    def suffixes(self) -> set[str]:
        return set(self.dtypes) | {"bias"}


def _shape(infos: dict[str, TensorInfo], suffix: str) -> tuple[int, ...] | None:
    info = infos.get(suffix)
    return info.shape if info is not None else None


def _two_d(*shapes) -> bool:
    return all(s is not None and len(s) == 2 and all(s) for s in shapes)


def _gemm_dims(infos, _values) -> Dims | None:
    qw, sc = _shape(infos, "qweight"), _shape(infos, "scales")
    if not _two_d(qw):
        return None
    n = sc[1] if _two_d(sc) else qw[1] * 8
    return Dims(n=n, k=qw[0], groups=sc[0] if _two_d(sc) else None, pack=n / qw[1])


def _gemv_dims(infos, _values) -> Dims | None:
    qw = _shape(infos, "qweight")
    return Dims(n=qw[0], k=qw[1] * 8, groups=None, pack=8) if _two_d(qw) else None


def _ct_dims(infos, values) -> Dims | None:
    wp, sc, ws = _shape(infos, "weight_packed"), _shape(infos, "weight_scale"), values.get("weight_shape")
    if not _two_d(wp):
        return None
    n, k = ws if ws is not None else (wp[0], wp[1] * 8)
    groups = sc[1] if _two_d(sc) else None
    return Dims(n=n, k=k, groups=groups, pack=k / wp[1] if wp[1] else 0)


def _gptq_dims(infos, _values) -> Dims | None:
    qw, sc, gi = _shape(infos, "qweight"), _shape(infos, "scales"), _shape(infos, "g_idx")
    if not _two_d(qw):
        return None
    k = gi[0] if gi and len(gi) == 1 else qw[0] * 8
    return Dims(n=qw[1], k=k, groups=sc[0] if _two_d(sc) else None, pack=k / qw[0])


GEMM = Layout("awq-gemm", "qweight", ("qweight", "qzeros", "scales"),
              {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES}, awq_gemm, _gemm_dims, True)
GEMV = Layout("awq-gemv", "qweight", ("qweight", "qzeros", "scales"),
              {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES}, awq_gemv, _gemv_dims, False)
CT = Layout("compressed-tensors", "weight_packed", ("weight_packed", "weight_scale", "weight_shape"),
            {"weight_packed": {"I32"}, "weight_scale": FLOAT_SCALES | {"F32"}, "weight_zero_point": {"I32", "I8"},
             "weight_shape": {"I64", "I32"}, "weight_g_idx": {"I32"}}, compressed_tensors, _ct_dims, False)
GPTQ = Layout("gptq", "qweight", ("qweight", "qzeros", "scales"),
              {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES, "g_idx": {"I32"}}, gptq, _gptq_dims,
              False)

LAYOUTS = {lay.name: lay for lay in (GEMM, GEMV, CT, GPTQ)}


def expected_shapes(layout: Layout, dims: Dims, group_width: int) -> dict[str, tuple[int, ...]]:
    shapes = dict(layout.module.shapes(dims.k, dims.n, group_width))
    shapes["bias"] = (dims.n,)
    if layout is CT:
        shapes["weight_g_idx"] = (dims.k,)
    return shapes


def fits(layout: Layout, infos: dict[str, TensorInfo], values: dict, group_width: int | None) -> bool:
    """Do the present tensors have exactly this layout's shapes (for some plausible group width)?"""
    dims = layout.dims(infos, values)
    gw = dims.group_width() if dims else None
    gw = gw or group_width
    if dims is None or not gw or dims.k % gw or dims.pack != 8 or not set(infos) <= layout.suffixes:
        return False
    try:
        want = expected_shapes(layout, dims, gw)
    except ValueError:
        return False
    return all(tuple(want.get(s, ())) == info.shape for s, info in infos.items() if s in want)
