"""``awq-harness eval``: perplexity on the held-out split, float vs quantised, as a table.

Windowing is documented in ``awq_ref.eval.perplexity``: non-overlapping ``--seqlen`` windows of
the tokenized held-out text (Pride and Prejudice), the first ``--windows`` of them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from awq_ref.cli.device_flag import add_device_flag
from awq_ref.cli.eval_lm import add_lm_eval_options, run_with_lm_eval
from awq_ref.cli.method_options import add_method_options, requested_methods
from awq_ref.data.models import DEFAULT_GROUP_SIZE
from awq_ref.eval.evaluate import EvalSettings, eval_tokens, evaluate_checkpoint, evaluate_float, evaluate_method
from awq_ref.methods.registry import method_names
from awq_ref.primitives.compute_dtype import AUTO, CHOICES, DtypeChoice, choose
from awq_ref.primitives.device import describe_peak, peak_memory, resolve_device


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="perplexity of float and quantised models on held-out text",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="'default' or a float model folder (the fp row)")
    p.add_argument("--checkpoint", action="append", default=[], help="a quantised checkpoint (repeatable)")
    p.add_argument("--methods", default="", help=f"comma list quantised in memory, from {method_names()}")
    p.add_argument("--w-bit", type=_int_list, default=[4], help="comma list of bit widths for --methods")
    p.add_argument("--group-size", type=_int_list, default=[DEFAULT_GROUP_SIZE], help="comma list")
    p.add_argument("--no-zero-point", action="store_true")
    p.add_argument("--calib-samples", type=int, default=128)
    p.add_argument("--calib-seqlen", type=int, default=512)
    p.add_argument("--windows", type=int, default=16, help="evaluation windows")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per evaluation window")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--dtype", default=AUTO, choices=CHOICES,
                   help="evaluation dtype; auto: bfloat16 where this CPU multiplies it natively, else float32")
    add_device_flag(p)
    p.add_argument("--json", help="also write the rows to this JSON file")
    add_method_options(p)
    add_lm_eval_options(p)
    p.set_defaults(func=run)


def _rows(args, settings: EvalSettings, tokens) -> list:
    rows = [evaluate_float(args.model, tokens, settings)]
    for folder in args.checkpoint:
        rows.append(evaluate_checkpoint(folder, tokens, settings))
    for method, request in requested_methods(args):
        rows.append(evaluate_method(args.model, method, request, tokens, settings))
    return rows


def _print_table(rows, settings: EvalSettings, dtype: DtypeChoice) -> None:
    fp = rows[0].result.ppl
    print(f"perplexity on held-out text: {settings.windows} windows x {settings.seqlen} tokens, "
          f"evaluated in {dtype.describe()}")
    print(f"{'model':<48} {'ppl':>10} {'vs fp':>8} {'seconds':>8}")
    for row in rows:
        print(f"{row.label[-48:]:<48} {row.result.ppl:>10.3f} {row.result.ppl / fp:>7.3f}x {row.seconds:>8.1f}")


def _record(model: str, rows: list[dict], dtype: str) -> None:
    """Perplexity rows for ``awq-harness --results-json`` (no-op otherwise)."""
    from reports.collect import record

    for row in rows:
        method = row.get("method", row["label"])
        bits = 16 if method == "fp" else row.get("bits")  # the float row counts as 16-bit
        if bits is None:
            continue  # a row whose bit width is unknown (lm-eval's labelled rows) is not a table entry
        record("perplexity", {"model": model, "method": method, "bits": bits,
                              "group_size": row.get("group_size"), "ppl": row["ppl"], "label": row["label"],
                              "evaluator": "own", "windows": row["windows"], "seqlen": row["seqlen"],
                              "dtype": dtype})


def run(args) -> int:
    args.device = resolve_device(args.device)
    dtype = choose(args.dtype, args.device)
    settings = EvalSettings(args.windows, args.seqlen, args.batch_size, dtype.torch_dtype, args.device)
    if args.lm_eval:  # awq_ref.cli.eval_lm: every row also scored by lm-eval
        rows = run_with_lm_eval(args, settings, eval_tokens(args.model))
    else:
        table = _rows(args, settings, eval_tokens(args.model))
        _print_table(table, settings, dtype)
        rows = [r.to_json() for r in table]
    peak = peak_memory(args.device)
    if peak is not None:
        print(describe_peak(peak))
    _record(args.model, rows, dtype.dtype)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": {"windows": settings.windows, "seqlen": settings.seqlen,
                                                            "dtype": dtype.to_json(), "device": str(args.device),
                                                            "peak_device_memory": peak},
                                               "rows": rows}, indent=2) + "\n")
    return 0
