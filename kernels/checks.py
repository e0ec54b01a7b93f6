"""Input validation shared by the kernel wrappers. Every failure is a ValueError.

    qweight  [K, N/8]    int32
    qzeros   [K/G, N/8]  int32
    scales   [K/G, N]    float16 | bfloat16 | float32
    x        [M, K]      float16 | bfloat16 | float32

The weights' shapes are the GEMM layout's own table (``awq_ref.formats.awq_gemm``: its
``dims`` reads K, N and the groups off the stored shapes, its ``shapes`` says what they must
be). G is K / scales.shape[0]. Kernels walk K in blocks that must not straddle a group, so G
must be a multiple of MIN_BLOCK (16, the smallest tl.dot size on a GPU) unless there is a
single group (per-channel, G = K), in which case K may be anything.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from awq_harness.awq_ref.formats import awq_gemm, awq_gemv
from awq_harness.kernels.runtime import triton_can_run

MIN_BLOCK = 16
MAX_ELEMENTS = 2**31 - 1  # kernels index with int32 offsets
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class LayerShape:
    k: int  # inputs
    n: int  # outputs
    group_size: int  # G; equals k for per-channel

    @property
    def groups(self) -> int:
        return self.k // self.group_size


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_tensor(name: str, t: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> None:
    _require(isinstance(t, torch.Tensor), f"{name} must be a torch.Tensor, got {type(t).__name__}")
    _require(t.dim() == 2, f"{name} must be 2-D, got shape {tuple(t.shape)}")
    _require(t.dtype in dtypes, f"{name} dtype must be one of {dtypes}, got {t.dtype}")


def check_weights(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor) -> LayerShape:
    """Validate the three AWQ GEMM tensors and return the layer's K, N and G."""
    _check_tensor("qweight", qweight, (torch.int32,))
    _check_tensor("qzeros", qzeros, (torch.int32,))
    _check_tensor("scales", scales, FLOAT_DTYPES)
    _require(all(qweight.shape), f"qweight must not be empty, got shape {tuple(qweight.shape)}")
    layer = awq_gemm.dims({"qweight": tuple(qweight.shape), "scales": tuple(scales.shape)})
    k, n, groups, words = layer.k, layer.n, layer.groups or 0, qweight.shape[1]
    per_word = awq_gemm.CODES_PER_WORD
    _require(layer.pack == per_word, f"scales has {n} columns but qweight packs {per_word * words} (N/8 = {words})")
    _require(groups > 0 and k % groups == 0, f"K = {k} is not an exact multiple of {groups} groups")
    g = k // groups
    want = awq_gemm.shapes(k, n, g)["qzeros"]
    _require(tuple(qzeros.shape) == want, f"qzeros shape {tuple(qzeros.shape)} != (K/G, N/8) = {want}")
    return _launchable(qweight, qzeros, scales, k, n, g)


def _launchable(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, k: int, n: int,
                g: int) -> LayerShape:
    """What every layout's kernels need once its shapes are right: a group size the K blocks tile
    (or one group per channel), one device Triton can run on, addressable sizes."""
    _require(k // g == 1 or g % MIN_BLOCK == 0,
             f"group size {g} must be a multiple of {MIN_BLOCK} (or one group per channel)")
    devices = {qweight.device, qzeros.device, scales.device}
    _require(len(devices) == 1, f"weights are on different devices: {devices}")
    _require(triton_can_run(qweight.device),
             f"Triton cannot run on {qweight.device}: needs CUDA, or TRITON_INTERPRET=1 for CPU")
    check_addressable("the dense weight K x N", k * n)
    return LayerShape(k=k, n=n, group_size=g)


def supported(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, version: str = "gemm",
              group_size: int | None = None) -> bool:
    """True if the kernels can serve these weights of layout ``version`` ("gemm", or "gemv" with
    the checkpoint's ``group_size``): shapes, dtypes, group size, device."""
    try:
        if version == "gemv":
            check_gemv_layout_weights(qweight, qzeros, scales, -1 if group_size is None else group_size)
        elif version == "gemm":
            check_weights(qweight, qzeros, scales)
        else:
            return False
    except ValueError:
        return False
    return True


def check_addressable(what: str, elements: int) -> None:
    _require(elements <= MAX_ELEMENTS, f"{what} has {elements} elements; int32 offsets reach {MAX_ELEMENTS}")


def check_activations(x: torch.Tensor, layer: LayerShape, device: torch.device) -> None:
    _check_tensor("x", x, FLOAT_DTYPES)
    _require(x.shape[1] == layer.k, f"x has {x.shape[1]} features, the layer expects K = {layer.k}")
    _require(x.shape[0] > 0, "x has no rows (M = 0)")
    _require(x.device == device, f"x is on {x.device}, the weights on {device}")
    check_addressable("x", x.shape[0] * max(x.stride(0), 1) + x.shape[1] * max(x.stride(1), 1))


def check_block(name: str, value: int, minimum: int) -> int:
    """A block size: a power of two >= minimum."""
    ok = isinstance(value, int) and value >= minimum and value & (value - 1) == 0
    _require(ok, f"{name} must be a power of two >= {minimum}, got {value!r}")
    return value


def check_k_block(block_k: int, layer: LayerShape, minimum: int) -> int:
    """A K block that never straddles two groups."""
    check_block("block_k", block_k, minimum)
    _require(layer.groups == 1 or layer.group_size % block_k == 0,
             f"block_k {block_k} must divide the group size {layer.group_size}")
    return block_k


def check_split_k(split_k: int) -> int:
    _require(isinstance(split_k, int) and split_k >= 1, f"split_k must be an int >= 1, got {split_k!r}")
    return split_k


def largest_k_block(layer: LayerShape, cap: int) -> int:
    """The largest power of two <= cap dividing G (any power of two for one group)."""
    block = cap
    while layer.groups > 1 and layer.group_size % block:
        block //= 2
    return block


def check_gemv_layout_weights(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                              group_size: int) -> LayerShape:
    """Validate the three AutoAWQ GEMV-layout tensors (``awq_ref.formats.awq_gemv``) for group size
    ``group_size`` (-1 = per channel): qweight [N, K/8], qzeros [N, ZW], scales [N, ZW*8]."""
    _check_tensor("qweight", qweight, (torch.int32,))
    _check_tensor("qzeros", qzeros, (torch.int32,))
    _check_tensor("scales", scales, FLOAT_DTYPES)
    _require(all(qweight.shape), f"qweight must not be empty, got shape {tuple(qweight.shape)}")
    layer = awq_gemv.dims({"qweight": tuple(qweight.shape)})
    n, k = layer.n, layer.k
    _require(isinstance(group_size, int) and (group_size == -1 or group_size > 0),
             f"group_size must be -1 (per channel) or a positive int, got {group_size!r}")
    g = k if group_size == -1 or group_size >= k else group_size
    _require(k % g == 0, f"group size {g} does not divide K = {k}")
    try:
        want = awq_gemv.shapes(k, n, g)
    except ValueError as err:
        raise ValueError(str(err)) from None
    for name, t in (("qzeros", qzeros), ("scales", scales)):
        _require(tuple(t.shape) == want[name], f"{name} shape {tuple(t.shape)} != {want[name]} for the GEMV layout "
                                               f"(N = {n}, K = {k}, G = {g})")
    return _launchable(qweight, qzeros, scales, k, n, g)
