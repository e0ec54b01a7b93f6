"""A quantised linear layer that holds packed tensors and runs the plain-torch reference.

The module stores exactly the tensors of its layout (so ``state_dict`` is the checkpoint's
content) and computes y = x @ dequantize(unpack(tensors)).T + bias. The dequantised weight
is cached after the first forward, on the device of the packed tensors, and forgotten when
the module moves (``_apply``: ``.to``, ``.cuda``); it never goes into the state dict. Packed
tensors are made on the device of the codes, so a layer quantised on a GPU stays there.
"""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch
from torch import nn

from awq_harness.awq_ref.formats import layout
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

# Which forward AwqLinear runs: "auto" = the Triton kernels (package ``kernels``) for CUDA
# inputs, the torch reference otherwise; "triton" = the kernels wherever Triton can run
# (also the CPU interpreter, TRITON_INTERPRET=1); "torch" = always the reference.
# The process-wide default; a ``kernel_backend`` block overrides it for the code it runs.
KERNELS = os.environ.get("AWQ_HARNESS_KERNELS", "auto").lower()
KERNEL_CHOICES = ("auto", "triton", "torch")
_BACKEND_IN_BLOCK: ContextVar[str | None] = ContextVar("awq_kernel_backend", default=None)


@contextmanager
def kernel_backend(mode: str) -> Iterator[None]:
    """Run every AwqLinear forward inside the block through ``mode`` (one of KERNEL_CHOICES).

    Blocks nest, and the choice ends with the block even if it raises; KERNELS is left as is."""
    if mode not in KERNEL_CHOICES:
        raise ValueError(f"kernel backend {mode!r}; choose from {KERNEL_CHOICES}")
    token = _BACKEND_IN_BLOCK.set(mode)
    try:
        yield
    finally:
        _BACKEND_IN_BLOCK.reset(token)


def _backend() -> str:
    """The innermost ``kernel_backend`` block's choice, else KERNELS (checked: it comes from the environment)."""
    chosen = _BACKEND_IN_BLOCK.get()
    if chosen is not None:
        return chosen
    if KERNELS not in KERNEL_CHOICES:
        raise ValueError(f"AWQ_HARNESS_KERNELS={KERNELS!r}; choose from {KERNEL_CHOICES}")
    return KERNELS


def _triton_linear(module: "AwqLinear", x: torch.Tensor):
    """The kernels' ``awq_linear`` if they can serve this module and input, else None."""
    backend = _backend()
    wanted = backend == "triton" or (backend == "auto" and x.is_cuda)
    if not wanted or module.version not in ("gemm", "gemv") or module.spec.bits != 4:
        return None
    try:
        from awq_harness.kernels import awq_linear, supported, triton_can_run
    except ImportError:
        return None
    layout = {"version": module.version, "group_size": module.spec.group_size}
    serves = triton_can_run(x.device) and supported(module.qweight, module.qzeros, module.scales, **layout)
    return functools.partial(awq_linear, **layout) if serves else None


class AwqLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, spec: QuantSpec, version: str, bias: bool,
                 device: torch.device | None = None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.spec, self.version = spec, version.lower()
        shapes = layout(self.version).shapes(in_features, out_features, spec.group_width(in_features))
        self.register_buffer("qweight", torch.zeros(shapes["qweight"], dtype=torch.int32, device=device))
        self.register_buffer("qzeros", torch.zeros(shapes["qzeros"], dtype=torch.int32, device=device))
        self.register_buffer("scales", torch.zeros(shapes["scales"], dtype=torch.float16, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float16, device=device) if bias else None)
        self._weight_cache: torch.Tensor | None = None
        self._register_load_state_dict_pre_hook(lambda *a, **k: self.forget_cache())

    @classmethod
    def from_quantized(cls, qw: QuantizedWeight, version: str, bias: torch.Tensor | None) -> "AwqLinear":
        """The packed module, on the device of the codes (where they were computed)."""
        n, k = qw.shape
        module = cls(k, n, qw.spec, version, bias is not None, device=qw.q.device)
        for name, tensor in layout(version).pack(qw).items():
            getattr(module, name).copy_(tensor)
        if bias is not None:
            module.bias.copy_(bias.detach().to(torch.float16))
        return module

    def forget_cache(self) -> None:
        self._weight_cache = None

    def _apply(self, fn, recurse=True):
        self.forget_cache()  # a cached weight would stay on the old device (or dtype)
        return super()._apply(fn, recurse)

    def quantized_weight(self) -> QuantizedWeight:
        tensors = {"qweight": self.qweight, "qzeros": self.qzeros, "scales": self.scales}
        return layout(self.version).unpack(tensors, self.spec)

    def dequantized_weight(self) -> torch.Tensor:
        """W_hat [N, K] in float32, exactly (q - z) * s."""
        if self._weight_cache is None:
            self._weight_cache = self.quantized_weight().dequantize(torch.float32)
        return self._weight_cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = _triton_linear(self, x)
        if kernel is not None:
            return kernel(x, self.qweight, self.qzeros, self.scales, self.bias)
        w = self.dequantized_weight().to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, w, bias)

    def extra_repr(self) -> str:
        s = self.spec
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={s.bits}, "
                f"group_size={s.group_size}, zero_point={s.zero_point}, version={self.version}")
