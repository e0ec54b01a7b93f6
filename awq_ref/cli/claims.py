"""``awq-harness claims``: the seed's claims about AWQ, GPTQ, RTN and NF4, rerun with intervals.

``--settings ci`` is sized for a CI machine (small calibration, 16 x 256-token windows);
``--settings slow`` is the paper-sized run (128 x 512 calibration, the calibration curve to 128
and 256 samples). Rows are stored as they finish (``--store``), so ``--part K/N`` lets N
processes compute disjoint rows (every N-th model, each scored on all its texts) and a last
call without ``--part`` prints the tables; ``--stored-only`` prints what is stored so far and
computes nothing (a long run can be read while it goes on).
How each verdict is reached: ``awq_ref.eval.claims``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from awq_harness.awq_ref.data.cache import cache_dir
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.eval import claims
from awq_harness.awq_ref.eval.claim_rows import SETTINGS, RowStore
from awq_harness.awq_ref.eval.metrics import LEVEL, RESAMPLES, SEED
from awq_harness.awq_ref.primitives.compute_dtype import AUTO, CHOICES, choose


def add_parser(sub) -> None:
    p = sub.add_parser("claims", help="rerun the seed's quantisation claims with confidence intervals",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="'default' or a float model folder")
    p.add_argument("--settings", default="ci", choices=sorted(SETTINGS), help="ci: CI-affordable; slow: paper-sized")
    p.add_argument("--dtype", default=AUTO, choices=CHOICES, help="calibration and evaluation dtype")
    p.add_argument("--store", help="folder of computed rows (default: <cache>/claims)")
    p.add_argument("--part", help="K/N: compute only every N-th model from K (all its rows); print nothing")
    p.add_argument("--stored-only", action="store_true",
                   help="compute nothing: print the claims whose rows are stored, and name a missing row of the rest")
    p.add_argument("--json", help="also write the claims and quality rows to this JSON file")
    p.set_defaults(func=run)


def _store(args) -> RowStore:
    from dataclasses import replace

    dtype = choose(args.dtype).dtype
    settings = replace(SETTINGS[args.settings], calib_dtype=dtype, eval_dtype=dtype)
    folder = Path(args.store) if args.store else cache_dir() / "claims"
    started = time.perf_counter()
    return RowStore(folder, args.model, settings,
                    lambda key, info: print(f"  row {key}: quantise {info['quantize_seconds']} s, "
                                            f"eval {info['eval_seconds']} s "
                                            f"({time.perf_counter() - started:.0f} s so far)", flush=True))


def _part(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise HarnessError(f"--part takes K/N (e.g. 0/2), not {text!r}") from None
    if not 0 <= k < n:
        raise HarnessError(f"--part {text}: need 0 <= K < N")
    return k, n


def print_claims(results: list, settings) -> None:
    print(f"claims, settings {settings.name}: calibration {settings.calib_samples} x {settings.calib_seqlen} tokens, "
          f"evaluation {settings.windows} x {settings.seqlen} tokens; intervals: {LEVEL:.0%} paired bootstrap over "
          f"windows, {RESAMPLES} resamples, seed {SEED}")
    print(f"{'claim':<58} {'comparison':<52} {'statistic':<26} {'value':>8} {'interval':>20}  verdict")
    for r in results:
        print(f"{r.claim[:58]:<58} {r.comparison[:52]:<52} {r.statistic[:26]:<26} {r.value:>+8.4f} "
              f"[{r.ci[0]:>+8.4f},{r.ci[1]:>+8.4f}]  {r.verdict}")


def print_quality(rows: list[dict]) -> None:
    print(f"{'row':<40} {'ppl':>8} {'ppl interval':>19} {'KL mean':>8} {'interval':>19} {'median':>7} "
          f"{'p99':>6} {'p99.9':>6} {'max':>6} {'top-1':>6} {'interval':>15}")
    for r in rows:
        ci = r["ci"]
        print(f"{r['label'][:40]:<40} {r['ppl']:>8.3f} [{ci['ppl'][0]:>8.3f},{ci['ppl'][1]:>8.3f}] "
              f"{r['kld_mean']:>8.4f} [{ci['kld_mean'][0]:>8.4f},{ci['kld_mean'][1]:>8.4f}] {r['kld_median']:>7.4f} "
              f"{r['kld_p99']:>6.3f} {r['kld_p999']:>6.3f} {r['kld_max']:>6.2f} {r['top1_agreement']:>6.4f} "
              f"[{ci['top1_agreement'][0]:.4f},{ci['top1_agreement'][1]:.4f}]")


def print_domains(rows: list[dict], settings) -> None:
    """AWQ w4 calibrated on each text x evaluated on each text: perplexity [interval], KL mean."""
    cells = {(r["calib_domain"], r["eval_domain"]): r for r in rows
             if r["method"] == "awq" and r["bits"] == 4 and r["calib_samples"] == settings.calib_samples}
    domains = sorted({d for pair in cells for d in pair})
    print("awq w4, calibrated on (row) x evaluated on (column): ppl [95% interval] KL mean")
    print(f"{'calibrated on':<14}" + "".join(f"{'on ' + d:>37}" for d in domains))
    for calib in domains:
        line = f"{calib:<14}"
        for target in domains:
            r = cells.get((calib, target))
            line += f"{'-':>37}" if r is None else \
                f"{r['ppl']:>10.3f} [{r['ci']['ppl'][0]:>8.3f},{r['ci']['ppl'][1]:>8.3f}] {r['kld_mean']:>7.4f}"
        print(line)


def _record(args, settings, results: list, rows: list[dict]) -> None:
    from awq_harness.reports.collect import record

    for r in results:
        record("claims", {"model": args.model, "settings": settings.name, **r.to_json()})
    for r in rows:
        record("quality", {"model": args.model, "settings": settings.name, "group_size": 64,
                           **{k: v for k, v in r.items() if k not in ("ci", "variant")},
                           **{f"{k}_ci": v for k, v in r["ci"].items()}})


def run(args) -> int:
    store = _store(args)
    variants = claims.claim_variants(store.settings)
    if args.part:
        k, n = _part(args.part)
        models = list(dict.fromkeys(v.model_key(store.settings) for v in variants))[k::n]
        store.compute([v for v in variants if v.model_key(store.settings) in models])
        return 0
    missing: list[str] = []
    if args.stored_only:
        results, missing = claims.stored_claims(store)
        store.compute_missing = False
    else:
        store.compute(variants)
        results = claims.all_claims(store)
    rows = claims.quality_rows(store)
    print_claims(results, store.settings)
    for label in missing:
        print(f"not computed yet (claims that need it are left out): {label}")
    print()
    print_quality(rows)
    print()
    print_domains(rows, store.settings)
    _record(args, store.settings, results, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": store.settings.to_json(), "model": args.model,
                                               "claims": [r.to_json() for r in results], "quality": rows},
                                              indent=1) + "\n")
    return 0
