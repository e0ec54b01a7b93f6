"""The GPU tier on the default model (SmolLM2-135M, group 64), on one CUDA device:

* the AWQ-vs-GPTQ perplexity gap: AWQ, GPTQ and RTN quantised on the GPU at 4 and 3 bits,
  scored on the held-out windows; FP < AWQ < RTN and GPTQ < RTN; every perplexity within the
  report's band of this GPU's baseline;
* greedy decode tokens/s through the kernels, AWQ GEMM and GEMV layouts, against fp16.

The kernel properties (natively) and the kernel benchmarks are tests/kernels' ``-m gpu`` half."""
from __future__ import annotations

import math

import pytest
import torch

from awq_harness.reports.baselines import load_baseline, write_section
from awq_harness.reports.collect import record
from tests.gpu_tier.tier import GapSetting, band_failures, decode_rows, gap_rows, order_failures, perplexity_rows

pytestmark = pytest.mark.gpu
DEFAULT_GROUP_SIZE = 64  # awq_ref.data.models.DEFAULT_GROUP_SIZE: hidden 576 is not a multiple of 128
GPU = GapSetting("default", DEFAULT_GROUP_SIZE, calib_samples=16, calib_seqlen=512, windows=16, seqlen=512)
NEW_TOKENS = 128


@pytest.fixture(scope="module")
def default_model():
    from awq_harness.awq_ref.data.models import load_model, load_tokenizer
    from awq_harness.awq_ref.errors import ModelError

    try:
        return load_model("default", dtype=torch.float32), load_tokenizer("default")
    except (ModelError, ImportError) as err:
        pytest.skip(f"default model unavailable: {err}")


def test_perplexity_gap_awq_gptq_rtn_on_gpu(default_model, write_gpu_baseline):
    from awq_harness.awq_ref.data.calibration import calibration_blocks
    from awq_harness.awq_ref.data.corpus import eval_text
    from awq_harness.awq_ref.eval.perplexity import tokenize_text

    model, tokenizer = default_model
    device = torch.cuda.get_device_name()
    calib = calibration_blocks(tokenizer, GPU.calib_samples, GPU.calib_seqlen, 0)
    rows = perplexity_rows(model, calib, tokenize_text(tokenizer, eval_text()), GPU, "cuda", device, dry_run=False)
    for row in rows:
        record("perplexity", row)
    print("\n" + "\n".join(f"{r['method']} w{r['bits']}: {r['ppl']:.4f}" for r in rows))
    print("gaps:", gap_rows(rows, GPU.bits))
    failures = order_failures(rows, GPU.bits)
    assert not failures, "; ".join(failures)
    if write_gpu_baseline:
        print(f"perplexity baseline -> {write_section(device, 'perplexity', rows)}; review the diff, then commit it")
        return
    failures = band_failures(rows, load_baseline(device), device)
    assert not failures, "; ".join(failures)


def test_decode_speed_gemm_and_gemv_layouts_against_fp16(default_model):
    model, tokenizer = default_model
    ids = tokenizer("The capital of France is Paris. The capital of Italy is", return_tensors="pt").input_ids
    rows = decode_rows(model, ids, DEFAULT_GROUP_SIZE, NEW_TOKENS, "cuda", torch.cuda.get_device_name(),
                       dry_run=False, name="default")
    for row in rows:
        record("decode_speed", row)
        print(f"\ndecode {row['model']}: {row['tokens_per_s']:.1f} tok/s vs fp16 {row['fp16_tokens_per_s']:.1f} "
              f"({row['speedup']:.2f}x)")
    assert [r["layout"] for r in rows] == ["gemm", "gemv"]
    assert all(math.isfinite(r["speedup"]) and r["speedup"] > 0 for r in rows)
