"""``awq-harness convert SRC DST --to compressed-tensors|gemm|gptq|gptq_v2``: a valid target or nothing.

AutoAWQ GEMM <-> compressed-tensors pack-quantized; GPTQ v1 <-> v2 (v2 -> v1 refused where a zero
is 0). The source must verify; codes and zeros are kept; scales the target layout cannot hold in
their dtype are rounded to fp16 (the largest relative change of a dequantised weight is printed)
or refused when fp16 cannot hold them. The output is verified before it is moved into place: a
failure of any kind leaves no DST (exit 2).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert between AutoAWQ GEMM and compressed-tensors, or GPTQ v1 and v2")
    p.add_argument("src", help="checkpoint folder to read")
    p.add_argument("dst", help="folder to create")
    p.add_argument("--to", required=True, choices=["compressed-tensors", "gemm", "gptq", "gptq_v2", "fp16", "bf16"],
                   help="target layout (gptq / gptq_v2: GPTQ's v1 or v2 zero convention, from a GPTQ source; "
                        "fp16 / bf16: a plain float checkpoint of the dequantised weights, for LoRA merging)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p.set_defaults(func=run)


def run(args) -> int:
    from awq_harness.conformance.convert import convert_checked

    if args.to in ("fp16", "bf16"):
        from awq_harness.conformance.float_export import export_float

        print(f"{export_float(args.src, args.dst, args.to, overwrite=args.overwrite)}: {args.to} float checkpoint")
        return 0
    result = convert_checked(args.src, args.dst, args.to, overwrite=args.overwrite)
    print(f"{result.path}: {result.report.format}: verifies; {result.rounding.line()}")
    return 0
