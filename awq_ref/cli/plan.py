"""``awq-harness plan``: rank layers (and linear groups) by sensitivity; propose what to keep in float
(``--keep-as float``, the default) or at 8 bits (``--keep-as 8bit``: a second compressed-tensors scheme).

The plan is chosen on the selection windows and reported again on disjoint validation
windows of the held-out text (``awq_ref.eval.holdout``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli.device_flag import add_device_flag
from awq_harness.awq_ref.cli.plan_output import print_plans, record_results
from awq_harness.awq_ref.data.corpus import eval_text
from awq_harness.awq_ref.data.models import load_model, load_tokenizer
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.eval.holdout import selection_and_validation
from awq_harness.awq_ref.eval.perplexity import tokenize_text
from awq_harness.awq_ref.mixed_precision.group_sensitivity import group_sensitivity, linear_groups
from awq_harness.awq_ref.mixed_precision.keep_as import KEEP_AS
from awq_harness.awq_ref.mixed_precision.plan import plan_keep_groups, plan_keep_layers
from awq_harness.awq_ref.mixed_precision.sensitivity import layer_sensitivity
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix
from awq_harness.awq_ref.pipeline.refold import check_same_basis, checkpoint_request, folded_layers
from awq_harness.awq_ref.primitives.device import resolve_device

FLOAT_BESIDE = "layers-float"  # with --keep-as 8bit: the float layer plan for the same target


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="rank layers by sensitivity; propose float layers to recover a perplexity share",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="default", help="the float model ('default' or a folder)")
    p.add_argument("--checkpoint", required=True, help="the quantised checkpoint of that model")
    p.add_argument("--target", type=float, default=0.5, help="share of the perplexity gap to recover (0-1]")
    p.add_argument("--windows", type=int, default=2, help="selection windows: rank and choose on these")
    p.add_argument("--seqlen", type=int, default=256, help="tokens per selection window")
    p.add_argument("--val-windows", type=int, default=8, help="validation windows (after the selection ones)")
    p.add_argument("--val-seqlen", type=int, default=512, help="tokens per validation window")
    p.add_argument("--groups", action="store_true",
                   help="also rank linear groups inside the top layers and plan with them "
                        "(needs an awq-harness checkpoint)")
    p.add_argument("--group-layers", type=int, default=6, help="with --groups: how many top-ranked layers to split")
    p.add_argument("--keep-as", choices=KEEP_AS, default="float",
                   help="store kept layers/linears as float (AutoAWQ modules_to_not_convert) or as an 8-bit "
                        "compressed-tensors scheme; recovery and bytes are reported either way")
    p.add_argument("--json", help="write rankings and plans to this file (quantize --keep-layers reads it)")
    add_device_flag(p)
    p.set_defaults(func=run)


def _windows(model: str, args):
    tokens = tokenize_text(load_tokenizer(model), eval_text())
    try:
        return selection_and_validation(tokens, args.seqlen, args.windows, args.val_seqlen, args.val_windows)
    except ValueError as err:
        raise HarnessError(str(err)) from None


def _layer_ranking(reference, quantized, ids):
    with tqdm(total=len(decoder_layers(reference)), desc="layer sensitivity", unit="layer") as bar:
        return layer_sensitivity(reference, quantized, ids, on_layer=lambda i: bar.update(1))


def _group_ranking(args, reference, quantized, layer_ranking, ids):
    method, request = checkpoint_request(args.checkpoint)
    top = [s.layer for s in layer_ranking[:args.group_layers]]
    folded = folded_layers(reference, method, load_tokenizer(args.model), request, top)
    check_same_basis(folded, quantized)
    total = sum(len(linear_groups(reference, decoder_layers(reference)[i])) for i in folded)
    with tqdm(total=total, desc="group sensitivity", unit="group") as bar:
        return folded, group_sensitivity(reference, folded, quantized, ids, on_group=lambda i, g: bar.update(1))


def run(args) -> int:
    if not 0 < args.target <= 1:
        raise HarnessError(f"--target must be in (0, 1], got {args.target}")
    device = resolve_device(args.device)  # plan holds both whole models: they run there
    reference, quantized = load_model(args.model).to(device), load_checkpoint(args.checkpoint).to(device)
    selection, validation = _windows(args.model, args)
    ranking = _layer_ranking(reference, quantized, selection.ids)
    plans = {"layers": plan_keep_layers(reference, quantized, ranking, selection.ids, args.target,
                                        validation_ids=validation.ids, keep_as=args.keep_as)}
    if args.keep_as != "float":  # the float plan on the same ranking, beside it: recovery and bytes of both
        plans[FLOAT_BESIDE] = plan_keep_layers(reference, quantized, ranking, selection.ids, args.target,
                                               validation_ids=validation.ids)
    groups = []
    if args.groups:
        folded, groups = _group_ranking(args, reference, quantized, ranking, selection.ids)
        plans["groups"] = plan_keep_groups(reference, folded, quantized, groups, selection.ids, args.target,
                                           validation_ids=validation.ids, keep_as=args.keep_as)
    windows = {"selection": selection.describe(), "validation": validation.describe()}
    print_plans(ranking, groups, plans, windows)
    if args.json:
        Path(args.json).write_text(json.dumps(_document(ranking, groups, plans, windows, reference), indent=2) + "\n")
    record_results(args, ranking, groups, plans)
    return 0


def _document(ranking, groups, plans, windows, reference) -> dict:
    chosen = plans.get("groups", plans["layers"])
    return {"windows": windows, "ranking": [s.to_json() for s in ranking],
            "group_ranking": [s.to_json() for s in groups],
            "plan": chosen.to_json(), "layer_plan": plans["layers"].to_json(),
            "group_plan": plans["groups"].to_json() if "groups" in plans else None,
            "float_plan": plans[FLOAT_BESIDE].to_json() if FLOAT_BESIDE in plans else None,
            "keep_as": chosen.keep_as,
            "modules_to_not_convert": chosen.modules_to_not_convert(layer_prefix(reference)),
            "modules_at_8bit": chosen.kept_modules(layer_prefix(reference)) if chosen.keep_as == "8bit" else []}
