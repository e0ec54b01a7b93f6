"""Flags for the methods' own settings, shared by ``quantize`` and ``eval``.

Each registered method with options adds its flags (``Method.options``: AWQ's map to
``AwqSearchConfig``, GPTQ's to ``GptqConfig``) and builds its part of the request; the request
is what the checkpoint metadata records. Defaults are AutoAWQ's.
"""
from __future__ import annotations

from typing import Iterator

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method, methods
from awq_harness.awq_ref.primitives.compute_dtype import AUTO, CHOICES, DtypeChoice, choose
from awq_harness.awq_ref.primitives.quant import QuantSpec


def add_method_options(p) -> None:
    with_options = [m for m in methods() if m.options is not None]
    g = p.add_argument_group(f"{' / '.join(m.name.upper() for m in with_options)} settings")
    g.add_argument("--calib-dtype", default=AUTO, choices=CHOICES,
                   help="compute dtype of the AWQ/GPTQ forwards; auto: on a CPU bfloat16 where it multiplies it "
                        "natively (AVX-512 BF16 / AMX, checked by a timed probe), else float32 (AVX2 CPUs "
                        "emulate bf16, tens of times slower); on CUDA bfloat16 on sm80+, else float16")
    for method in with_options:
        method.options.add_flags(g)


def calibration_dtype(args) -> DtypeChoice:
    """``--calib-dtype`` resolved for the run's device (``auto`` measured once per process), with the reason."""
    return choose(args.calib_dtype, getattr(args, "device", "cpu"))


def with_method_options(request, args):
    """The request with every method's settings from ``args`` (unchanged if the flags are absent)."""
    if not hasattr(args, "calib_dtype"):
        return request
    dtype = calibration_dtype(args).dtype
    for method in methods():
        if method.options is not None:
            request = method.options.configure(request, args, dtype)
    return request


def _fake_quantising(name: str):
    try:
        method = get_method(name)
    except HarnessError as err:
        raise SystemExit(f"awq-harness eval: error: {err}") from None
    if not method.fake_quant:
        raise SystemExit(f"awq-harness eval: error: method {name!r} cannot fake-quantise for evaluation")
    return method


def requested_methods(args) -> Iterator[tuple[str, QuantizeRequest]]:
    """``(method, request)`` for every --methods x --w-bit x --group-size, fake-quantising
    (version None) with the calibration and method settings of ``args``."""
    for name in [m for m in args.methods.split(",") if m]:
        _fake_quantising(name)
        for bits in args.w_bit:
            for group in args.group_size:
                spec = QuantSpec(bits, group, not args.no_zero_point)
                yield name, with_method_options(QuantizeRequest(spec, None, args.calib_samples, args.calib_seqlen),
                                                args)
