"""``awq-harness convert SRC DST --to compressed-tensors|gemm``: lossless layout conversion.

AutoAWQ GEMM <-> compressed-tensors pack-quantized. The source must verify; the output is
written atomically (a failure leaves no DST) and verifies in turn.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert between AutoAWQ GEMM and compressed-tensors, losslessly")
    p.add_argument("src", help="checkpoint folder to read")
    p.add_argument("dst", help="folder to create")
    p.add_argument("--to", required=True, choices=["compressed-tensors", "gemm", "fp16", "bf16"],
                   help="target layout; fp16/bf16: a plain float checkpoint of the dequantised weights (LoRA merging)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    p.set_defaults(func=run)


def run(args) -> int:
    from conformance.convert import convert
    from conformance.runner import verify

    if args.to in ("fp16", "bf16"):
        from conformance.float_export import export_float

        print(f"{export_float(args.src, args.dst, args.to, overwrite=args.overwrite)}: {args.to} float checkpoint")
        return 0
    out = convert(args.src, args.dst, args.to, overwrite=args.overwrite)
    report = verify(out)
    print(f"{out}: {report.format}: {'verifies' if report.conforms else 'DOES NOT VERIFY'}")
    return 0 if report.conforms else 1
