"""``awq-harness eval --lm-eval``: the perplexity table with lm-eval's numbers beside ours.

Each row's model is built once (float, a checkpoint, or quantised in memory), then scored
by ``awq_ref.eval.perplexity`` (ppl over --windows x --seqlen) and by lm-eval's ``austen_ppl``
task (``awq_ref.eval.lm_eval_task``: word perplexity and bits per byte over the first
--lm-eval-docs chapters of the held-out book, rolling windows of --seqlen).
"""
from __future__ import annotations

import time

import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli.method_options import requested_methods
from awq_harness.awq_ref.data.models import load_model, load_tokenizer
from awq_harness.awq_ref.eval.evaluate import method_tokenizer
from awq_harness.awq_ref.eval.lm_eval_task import held_out_documents, lm_eval_perplexity
from awq_harness.awq_ref.eval.perplexity import perplexity
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.model.dtype import cast_model
from awq_harness.awq_ref.pipeline.quantize import quantize_model


def add_lm_eval_options(p) -> None:
    p.add_argument("--lm-eval", action="store_true", help="also score every row with lm-eval (offline, in memory)")
    p.add_argument("--lm-eval-docs", type=int, default=3, help="held-out chapters lm-eval scores")


def _models(args):
    yield "fp", lambda dtype: load_model(args.model, dtype)
    for folder in args.checkpoint:
        yield str(folder), lambda dtype, folder=folder: load_checkpoint(folder, dtype)
    for method, request in requested_methods(args):
        label = f"{method} w{request.spec.bits} g{request.spec.group_size}"
        yield label, lambda dtype, m=method, r=request: _quantised(args.model, m, r, dtype)


def _quantised(model_name: str, method: str, request: QuantizeRequest, dtype: torch.dtype):
    model = load_model(model_name, torch.float32)
    quantize_model(model, method, request, method_tokenizer(model_name, method))
    return cast_model(model, dtype)


def run_with_lm_eval(args, settings, tokens) -> list[dict]:
    tokenizer, docs = load_tokenizer(args.model), held_out_documents(args.lm_eval_docs)
    print(f"ours: {settings.windows} x {settings.seqlen} tokens; lm-eval: {len(docs)} chapters, "
          f"max_length {settings.seqlen}; {str(settings.dtype).removeprefix('torch.')}")
    print(f"{'model':<32} {'ppl':>9} {'lm-eval word ppl':>17} {'bits/byte':>10} {'seconds':>8}")
    rows = []
    for label, build in _models(args):
        started = time.perf_counter()
        model = build(settings.dtype)
        ours = perplexity(model, tokens, settings.seqlen, settings.windows, settings.batch_size)
        theirs = lm_eval_perplexity(model, tokenizer, docs, max_length=settings.seqlen, batch_size=settings.batch_size)
        seconds = time.perf_counter() - started
        print(f"{label[-32:]:<32} {ours.ppl:>9.3f} {theirs.word_perplexity:>17.3f} "
              f"{theirs.bits_per_byte:>10.4f} {seconds:>8.1f}")
        rows.append({"label": label, "seconds": round(seconds, 2), **ours.to_json(),
                     "lm_eval": theirs.to_json()})
    return rows
