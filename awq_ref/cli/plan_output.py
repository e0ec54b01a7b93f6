"""What ``awq-harness plan`` prints and records for the regression report.

Results JSON (``--results-json``): one ``sensitivity`` entry per layer, and per linear group
with its ``group`` label; one ``perplexity`` row per plan measured on the validation windows
(``dataset`` "held-out validation windows"; method "<method>+keep-layers" or "+keep-groups",
"-8bit" appended for ``--keep-as 8bit``, with ``recovered``, ``extra_bytes`` and ``keep_as``),
next to the float and quantised rows on those windows.
"""
from __future__ import annotations

import json
from pathlib import Path

VALIDATION = "held-out validation windows"


def _window_text(w: dict) -> str:
    return f"{w['windows']} x {w['seqlen']} tokens from token {w['first_token']}"


def _print_plan(level: str, plan) -> None:
    kept = [str(i) for i in plan.keep_layers] + plan.keep_linears
    how = "in float" if plan.keep_as == "float" else "at 8 bits"
    print(f"plan ({level}): keep {len(kept)} {how}: {','.join(kept)}")
    print(f"  selection:  ppl {plan.ppl_plan:.3f} (fp {plan.ppl_reference:.3f}, quantised {plan.ppl_quantized:.3f}); "
          f"recovers {plan.recovered:.0%} of the gap")
    if plan.validation:
        v = plan.validation
        print(f"  validation: ppl {v.ppl_plan:.3f} (fp {v.ppl_reference:.3f}, quantised {v.ppl_quantized:.3f}); "
              f"recovers {v.recovered:.0%} of the gap")
    print(f"  size: +{plan.extra_bytes / 1e6:.2f} MB over {plan.quantized_bytes / 1e6:.1f} MB of quantised linears")


def print_plans(ranking, groups, plans: dict, windows: dict) -> None:
    print(f"selection windows: {_window_text(windows['selection'])}; "
          f"validation windows: {_window_text(windows['validation'])} (held-out text)")
    print("layer sensitivity (NLL increase per token with only that layer quantised):")
    for s in ranking[:8]:
        print(f"  layer {s.layer:>3}  +{s.delta_nll:.4f} nats  ppl {s.ppl:.3f}")
    if groups:
        print("linear-group sensitivity (only that group quantised):")
        for s in groups[:8]:
            print(f"  layer {s.layer:>3} {s.group:<34} +{s.delta_nll:.4f} nats")
    for level, plan in plans.items():
        _print_plan(level, plan)
    print("apply with: awq-harness quantize ... --keep-layers PLAN.json (the plan file from --json)")


def _quant_config(checkpoint: str) -> dict:
    try:
        return json.loads((Path(checkpoint) / "config.json").read_text()).get("quantization_config", {})
    except (OSError, ValueError):
        return {}


def _validation_rows(args, plans: dict) -> list[dict]:
    q = _quant_config(args.checkpoint)
    common = {"model": args.model, "group_size": q.get("group_size"), "evaluator": "own", "dataset": VALIDATION}
    first = next(iter(plans.values())).validation
    rows = [{**common, "method": "fp16", "bits": 16, "ppl": first.ppl_reference},
            {**common, "method": "quantized", "bits": q.get("bits", 4), "ppl": first.ppl_quantized}]
    for level, plan in plans.items():
        suffix = "" if plan.keep_as == "float" else f"-{plan.keep_as}"
        rows.append({**common, "method": f"quantized+keep-{level}{suffix}", "bits": q.get("bits", 4),
                     "ppl": plan.validation.ppl_plan, "recovered": plan.validation.recovered,
                     "extra_bytes": plan.extra_bytes, "keep_as": plan.keep_as,
                     "windows": first.windows, "seqlen": first.seqlen})
    return rows


def record_results(args, ranking, groups, plans: dict) -> None:
    try:
        from awq_harness.reports.collect import record
    except ImportError:
        return
    for s in ranking:
        record("sensitivity", {"model": args.model, "layer": s.layer, "score": s.delta_nll, "ppl": s.ppl})
    for s in groups:
        record("sensitivity", {"model": args.model, "layer": s.layer, "score": s.delta_nll, "ppl": s.ppl,
                               "group": s.group})
    for row in _validation_rows(args, plans):
        record("perplexity", row)
