"""Flags for the AWQ and GPTQ settings, shared by ``quantize`` and ``eval``.

Every flag maps to a field of ``AwqSearchConfig`` or ``GptqConfig``; the resulting request
(with both configs) is what the checkpoint metadata records. Defaults are AutoAWQ's.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from awq_ref.methods.awq import AwqSearchConfig
from awq_ref.methods.gptq import GptqConfig
from awq_ref.methods.registry import METHODS, QuantizeRequest
from awq_ref.primitives.compute_dtype import AUTO, CHOICES, DtypeChoice, choose
from awq_ref.primitives.quant import QuantSpec


def add_method_options(p) -> None:
    g = p.add_argument_group("AWQ / GPTQ settings")
    g.add_argument("--calib-dtype", default=AUTO, choices=CHOICES,
                   help="compute dtype of the AWQ/GPTQ forwards; auto: bfloat16 where this CPU multiplies it "
                        "natively (AVX-512 BF16 / AMX, checked by a timed probe), else float32 (AVX2 CPUs "
                        "emulate bf16, tens of times slower); never float16")
    g.add_argument("--n-grid", type=int, default=AwqSearchConfig.n_grid, help="AWQ scale grid points")
    g.add_argument("--no-duo-scaling", action="store_true", help="AWQ plain s = x^a (llm-awq) instead of duo")
    g.add_argument("--no-clip", action="store_true", help="skip AWQ's clip search (as llm-compressor)")
    g.add_argument("--loss-blocks", type=int, default=None, metavar="N",
                   help="AWQ scale-search loss on N evenly spaced calibration blocks (default: all, as "
                        "AutoAWQ); statistics and clip search still use every block")
    g.add_argument("--gptq-damp", type=float, default=GptqConfig.damp, help="GPTQ dampening (x mean diag H)")
    g.add_argument("--gptq-block-size", type=int, default=GptqConfig.block_size)
    g.add_argument("--gptq-act-order", action="store_true", help="GPTQ columns by decreasing Hessian diagonal")
    g.add_argument("--gptq-static-groups", action="store_true")


def calibration_dtype(args) -> DtypeChoice:
    """``--calib-dtype`` resolved (``auto`` measured once per process), with the reason."""
    return choose(args.calib_dtype)


def method_configs(args) -> dict:
    dtype = calibration_dtype(args).dtype
    awq = AwqSearchConfig(n_grid=args.n_grid, duo_scaling=not args.no_duo_scaling, clip=not args.no_clip,
                          compute_dtype=dtype, loss_blocks=args.loss_blocks)
    gptq = GptqConfig(damp=args.gptq_damp, block_size=args.gptq_block_size, act_order=args.gptq_act_order,
                      static_groups=args.gptq_static_groups, compute_dtype=dtype)
    return {"awq": awq, "gptq": gptq}


def with_method_options(request, args):
    """The request with the AWQ/GPTQ settings from ``args`` (unchanged if the flags are absent)."""
    if not hasattr(args, "calib_dtype"):
        return request
    return replace(request, **method_configs(args))


def requested_methods(args) -> Iterator[tuple[str, QuantizeRequest]]:
    """``(method, request)`` for every --methods x --w-bit x --group-size, fake-quantising
    (version None) with the calibration and method settings of ``args``."""
    for method in [m for m in args.methods.split(",") if m]:
        if method not in METHODS:
            raise SystemExit(f"awq-harness eval: error: unknown method {method!r}; available {sorted(METHODS)}")
        for bits in args.w_bit:
            for group in args.group_size:
                spec = QuantSpec(bits, group, not args.no_zero_point)
                yield method, with_method_options(QuantizeRequest(spec, None, args.calib_samples, args.calib_seqlen),
                                                  args)
