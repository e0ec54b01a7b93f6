"""``awq-harness plan``: rank layers by sensitivity and propose which to keep in float."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from awq_ref.arch import decoder_layers, layer_prefix
from awq_ref.checkpoint import load_checkpoint
from awq_ref.corpus import eval_text
from awq_ref.errors import HarnessError
from awq_ref.models import load_model, load_tokenizer
from awq_ref.perplexity import make_windows, tokenize_text
from awq_ref.plan import plan_keep_layers
from awq_ref.sensitivity import layer_sensitivity


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="rank layers by sensitivity; propose float layers to recover a perplexity share",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="the float model ('default' or a folder)")
    p.add_argument("--checkpoint", required=True, help="the quantised checkpoint of that model")
    p.add_argument("--target", type=float, default=0.5, help="share of the perplexity gap to recover (0-1]")
    p.add_argument("--windows", type=int, default=2, help="held-out windows scored")
    p.add_argument("--seqlen", type=int, default=256, help="tokens per window")
    p.add_argument("--json", help="write ranking and plan to this file (quantize --keep-layers reads it)")
    p.set_defaults(func=run)


def _windows(model: str, args) -> torch.Tensor:
    try:
        return make_windows(tokenize_text(load_tokenizer(model), eval_text()), args.seqlen, args.windows)
    except ValueError as err:
        raise HarnessError(str(err)) from None


def run(args) -> int:
    if not 0 < args.target <= 1:
        raise HarnessError(f"--target must be in (0, 1], got {args.target}")
    reference, quantized = load_model(args.model), load_checkpoint(args.checkpoint)
    ids = _windows(args.model, args)
    with tqdm(total=len(decoder_layers(reference)), desc="sensitivity", unit="layer") as bar:
        ranking = layer_sensitivity(reference, quantized, ids, on_layer=lambda i: bar.update(1))
    plan = plan_keep_layers(reference, quantized, ranking, ids, args.target)
    _print(ranking, plan, args)
    if args.json:
        doc = {"ranking": [s.to_json() for s in ranking], "plan": plan.to_json(),
               "modules_to_not_convert": plan.modules_to_not_convert(layer_prefix(reference))}
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    _record(ranking, args)
    return 0


def _print(ranking, plan, args) -> None:
    print(f"sensitivity (NLL increase per token with only that layer quantised), {args.windows} x {args.seqlen} tokens:")
    for s in ranking[:8]:
        print(f"  layer {s.layer:>3}  +{s.delta_nll:.4f} nats  ppl {s.ppl:.3f}")
    print(f"plan: keep layers {','.join(map(str, plan.keep_layers))} in float -> ppl {plan.ppl_plan:.3f} "
          f"(fp {plan.ppl_reference:.3f}, quantised {plan.ppl_quantized:.3f}); recovers {plan.recovered:.0%} of the gap")
    print(f"size: +{plan.extra_bytes / 1e6:.1f} MB over {plan.quantized_bytes / 1e6:.1f} MB of quantised linears")
    print(f"apply with: awq-harness quantize ... --keep-layers {','.join(map(str, plan.keep_layers))}")


def _record(ranking, args) -> None:
    try:
        from reports.collect import record
    except ImportError:
        return
    for s in ranking:
        record("sensitivity", {"model": args.model, "layer": s.layer, "score": s.delta_nll, "ppl": s.ppl})
