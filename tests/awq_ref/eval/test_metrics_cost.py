"""What KL divergence and top-1 agreement add to an evaluation pass, the float model's
distributions already cached: the scoring pass with the reference against the same pass without
it, on the same quantised model and windows, timed alternately in one run (pytest-benchmark).

The ratio of wall times and of this process's CPU times (``time.process_time``: steadier on a
busy machine, where other processes stretch the wall clock) is recorded in the benchmark's
``extra_info`` (``--benchmark-json``) and printed; it is not asserted (speed is a measurement,
not a unit test). The default run uses the trained tiny model, whose forward is cheap beside
the vocabulary-wide KL, so its ratio is an upper bound;
``slow`` measures the default model at the evaluator's default 16 x 512 windows.
"""
from __future__ import annotations

import time

import pytest
import torch

from awq_harness.awq_ref.data.models import load_model, resolve_model_dir
from awq_harness.awq_ref.eval.evaluate import eval_tokens
from awq_harness.awq_ref.eval.perplexity import make_windows
from awq_harness.awq_ref.eval.reference import cached_reference, score_windows
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec

ROUNDS = 3
CASES = [pytest.param("tiny", 4, 256, id="tiny-lm"),
         pytest.param("default", 16, 512, id="default-model", marks=pytest.mark.slow)]


def _model_name(which: str) -> str:
    if which == "tiny":
        from awq_harness.awq_ref.data.tiny_lm import tiny_lm_dir

        return str(tiny_lm_dir())
    return which


@pytest.mark.parametrize(("which", "n_windows", "seqlen"), CASES)
def test_cost_of_kl_and_top1_over_perplexity_alone(which, n_windows, seqlen, benchmark, tmp_path, monkeypatch):
    name = _model_name(which)
    windows = make_windows(eval_tokens(name), seqlen, n_windows)
    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path))  # a fresh float-logits cache, built once here
    reference, _ = cached_reference(resolve_model_dir(name), windows, torch.float32,
                                    lambda: load_model(name, torch.float32), 1)
    model = load_model(name, torch.float32)
    quantize_model(model, "rtn", QuantizeRequest(QuantSpec(4, 64)), None)
    seconds = {"ppl": [], "ppl+kld+top1": []}
    cpu = {"ppl": [], "ppl+kld+top1": []}

    def both():
        for label, ref in (("ppl", None), ("ppl+kld+top1", reference)):
            started, cpu_started = time.perf_counter(), time.process_time()
            with torch.no_grad():
                scores, _ = score_windows(model, windows, ref)
            seconds[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - cpu_started)
        return scores

    scores = benchmark.pedantic(both, rounds=ROUNDS, warmup_rounds=0, iterations=1)
    assert scores.kld is not None and scores.kld.shape == (n_windows, seqlen - 1)
    wall, cpu_ratio = (min(d["ppl+kld+top1"]) / min(d["ppl"]) for d in (seconds, cpu))
    benchmark.extra_info.update({"model": which, "windows": n_windows, "seqlen": seqlen,
                                 "ppl_seconds": min(seconds["ppl"]), "with_kl_seconds": min(seconds["ppl+kld+top1"]),
                                 "ratio": wall, "ppl_cpu_seconds": min(cpu["ppl"]),
                                 "with_kl_cpu_seconds": min(cpu["ppl+kld+top1"]), "cpu_ratio": cpu_ratio})
    print(f"\n{which}: {n_windows} x {seqlen}: ppl alone {min(seconds['ppl']):.2f} s wall / "
          f"{min(cpu['ppl']):.2f} s CPU, "
          f"with KL and top-1 {min(seconds['ppl+kld+top1']):.2f} s / {min(cpu['ppl+kld+top1']):.2f} s: "
          f"x{wall:.3f} wall, x{cpu_ratio:.3f} CPU (best of {ROUNDS}, alternated)")
