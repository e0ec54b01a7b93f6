"""``awq-harness eval``: perplexity on the held-out split, float vs quantised, as a table.

Windowing is documented in ``awq_ref.eval.perplexity``: non-overlapping ``--seqlen`` windows of
the tokenized held-out text of ``--domain`` (Pride and Prejudice, or the Python tutorial), the
first ``--windows`` of them. ``--metrics ppl,kld,top1`` adds the KL divergence from the float
model and top-1 agreement (``awq_ref.eval.metrics``; the float model's distributions are cached
once per model and settings); every row has bootstrap intervals over windows. ``--cloze N``
adds last-word accuracy on the first N cloze passages of the same text (an lm-eval task,
``awq_ref.eval.lm_eval_task.cloze``), with a bootstrap interval over passages.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from awq_harness.awq_ref.cli.device_flag import add_device_flag
from awq_harness.awq_ref.cli.eval_lm import add_lm_eval_options, run_with_lm_eval
from awq_harness.awq_ref.cli.method_options import add_method_options, requested_methods
from awq_harness.awq_ref.data.corpus import DEFAULT_DOMAIN, DOMAINS
from awq_harness.awq_ref.data.models import DEFAULT_GROUP_SIZE
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.eval.evaluate import (
    METRICS,
    EvalSettings,
    eval_tokens,
    evaluate_checkpoint,
    evaluate_float,
    evaluate_method,
)
from awq_harness.awq_ref.eval.metrics import LEVEL, RESAMPLES, SEED, STATISTICS
from awq_harness.awq_ref.methods.registry import get_method, method_names
from awq_harness.awq_ref.primitives.compute_dtype import AUTO, CHOICES, DtypeChoice, choose
from awq_harness.awq_ref.primitives.device import describe_peak, peak_memory, resolve_device

BOOTSTRAP = f"{LEVEL:.0%} percentile bootstrap over windows, {RESAMPLES} resamples, seed {SEED}"


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _metrics(text: str) -> tuple[str, ...]:
    names = tuple(v for v in text.split(",") if v)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown metric(s) {','.join(unknown) or '(none)'}; from {','.join(METRICS)}")
    return names


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
    p.add_argument("--metrics", type=_metrics, default=("ppl",),
                   help=f"comma list from {','.join(METRICS)}: kld and top1 compare with the float model")
    p.add_argument("--cloze", type=int, default=0, metavar="N",
                   help="also score last-word accuracy on the first N cloze passages of --domain (lm-eval)")
    p.add_argument("--domain", default=DEFAULT_DOMAIN, choices=sorted(DOMAINS), help="evaluation text")
    p.add_argument("--calib-domain", default=DEFAULT_DOMAIN, choices=sorted(DOMAINS),
                   help="calibration text of the --methods (calibrated methods)")
    add_method_options(p)
    add_lm_eval_options(p)
    p.set_defaults(func=run)


def _rows(args, settings: EvalSettings, tokens) -> list:
    rows = [evaluate_float(args.model, tokens, settings)]
    for folder in args.checkpoint:
        rows.append(evaluate_checkpoint(folder, tokens, settings, args.model))
    for method, request in requested_methods(args):
        try:
            rows.append(evaluate_method(args.model, method, replace(request, calib_domain=args.calib_domain),
                                        tokens, settings))
        except ValueError as err:
            raise HarnessError(f"cannot evaluate {method} w{request.spec.bits}: {err}") from None
    return rows


def _print_table(rows, settings: EvalSettings, dtype: DtypeChoice) -> None:
    fp = rows[0].result.ppl
    print(f"held-out text {settings.domain}: {settings.windows} windows x {settings.seqlen} tokens, "
          f"evaluated in {dtype.describe()}; intervals: {BOOTSTRAP}")
    kld = settings.against_float
    extra = f" {'kld mean':>9} {'median':>8} {'p99':>7} {'p99.9':>7} {'max':>7} {'top1':>7}" if kld else ""
    if settings.cloze:
        extra += f" {'cloze acc':>9} {'95% interval':>15}"
    print(f"{'model':<40} {'ppl':>9} {'95% interval':>19} {'vs fp':>7}{extra} {'seconds':>8}")
    for row in rows:
        q = row.quality()
        lo, hi = q["ci"]["ppl"]
        line = f"{row.label[-40:]:<40} {row.result.ppl:>9.3f} [{lo:>8.3f},{hi:>8.3f}] {row.result.ppl / fp:>6.3f}x"
        if kld:
            line += (f" {q['kld_mean']:>9.5f} {q['kld_median']:>8.5f} {q['kld_p99']:>7.4f} {q['kld_p999']:>7.4f}"
                     f" {q['kld_max']:>7.3f} {q['top1_agreement']:>7.4f}")
        if row.cloze:
            lo, hi = row.cloze.accuracy_ci
            line += f" {row.cloze.accuracy:>9.4f} [{lo:.4f},{hi:.4f}]"
        print(f"{line} {row.seconds:>8.1f}")
    if settings.cloze:
        print(f"cloze: {rows[0].cloze.passages} passages of {settings.domain}'s held-out text, lm-eval accuracy; "
              f"interval: {LEVEL:.0%} percentile bootstrap over passages, {RESAMPLES} resamples, seed {SEED}")


def _quality_key(row: dict, method: str, calib: dict) -> dict:
    """The fields that tell quality rows apart across runs (``reports.compare.QUALITY_KEY``)."""
    settings = f"eval {row['windows']}x{row['seqlen']}"
    if method == "checkpoint":
        return {"settings": settings, "method": row["label"]}  # one folder, one row
    return {"settings": settings, **(calib if method != "fp" and get_method(method).calibrated else {})}


def _record(model: str, rows: list[dict], dtype: str, domain: str, calib: dict | None = None) -> None:
    """Perplexity rows, and quality rows where KL / top-1 were scored, for ``awq-harness
    --results-json`` (no-op otherwise)."""
    from awq_harness.reports.collect import record

    calib = calib or {}
    for row in rows:
        method = row.get("method", row["label"])
        bits = 16 if method == "fp" else row.get("bits")  # the float row counts as 16-bit
        if bits is None:
            continue  # a row whose bit width is unknown (lm-eval's labelled rows) is not a table entry
        common = {"model": model, "method": method, "bits": bits, "group_size": row.get("group_size"),
                  "label": row["label"], "windows": row["windows"], "seqlen": row["seqlen"], "dtype": dtype}
        record("perplexity", {**common, "ppl": row["ppl"], "evaluator": "own"})
        if "kld_mean" in row:
            record("quality", {**common, **_quality_key(row, method, calib), "eval_domain": domain, "ppl": row["ppl"],
                               **{k: row[k] for k in STATISTICS},
                               **{f"{k}_ci": v for k, v in row["ci"].items()},
                               **({"cloze_accuracy": row["cloze"]["accuracy"],
                                   "cloze_accuracy_ci": row["cloze"]["accuracy_ci"]} if "cloze" in row else {})})


def run(args) -> int:
    args.device = resolve_device(args.device)
    dtype = choose(args.dtype, args.device)
    if args.cloze < 0:
        raise HarnessError(f"--cloze takes a number of passages >= 0, not {args.cloze}")
    if args.cloze and args.lm_eval:
        raise HarnessError("--cloze scores the rows of the plain table; run it without --lm-eval")
    settings = EvalSettings(args.windows, args.seqlen, args.batch_size, dtype.torch_dtype, args.device, args.metrics,
                            args.domain, args.cloze)
    if args.lm_eval:  # awq_ref.cli.eval_lm: every row also scored by lm-eval
        rows = run_with_lm_eval(args, settings, eval_tokens(args.model, args.domain))
    else:
        table = _rows(args, settings, eval_tokens(args.model, args.domain))
        _print_table(table, settings, dtype)
        rows = [r.to_json() for r in table]
    peak = peak_memory(args.device)
    if peak is not None:
        print(describe_peak(peak))
    _record(args.model, rows, dtype.dtype, args.domain,
            {"calib_domain": args.calib_domain, "calib_samples": args.calib_samples})
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": {"windows": settings.windows, "seqlen": settings.seqlen,
                                                            "dtype": dtype.to_json(), "device": str(args.device),
                                                            "peak_device_memory": peak, "domain": settings.domain,
                                                            "metrics": list(settings.metrics)},
                                               "rows": rows}, indent=2) + "\n")
    return 0
