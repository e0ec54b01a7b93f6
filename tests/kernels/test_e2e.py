"""A whole quantised model through the kernels: logits match the awq_ref path, and greedy
decode speed against the fp16 model goes into the results JSON. GPU: the default model
(SmolLM2-135M, group 64); CPU dry mode: a tiny seeded Llama under the interpreter."""
from __future__ import annotations

import copy

import pytest
import torch

from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.modules.qlinear import kernel_backend
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.kernels.bench.decode import decode_record
from tests.kernels.oracle import tolerance


def quantised_copy(model, group_size: int):
    quantised = copy.deepcopy(model).float()
    # on the CPU: AwqLinear buffers are CPU
    quantize_model(quantised, "rtn", QuantizeRequest(QuantSpec(4, group_size, True), "gemm"))
    return quantised


@torch.no_grad()
def logits_error(quantised, ids: torch.Tensor) -> tuple[float, float]:
    """(max |kernels - reference| / max |reference|, share of positions with the same argmax)."""
    with kernel_backend("torch"):
        reference = quantised(ids).logits.float()
    with kernel_backend("triton"):
        through_kernels = quantised(ids).logits.float()
    err = ((through_kernels - reference).abs().max() / reference.abs().max()).item()
    agree = (through_kernels.argmax(-1) == reference.argmax(-1)).float().mean().item()
    return err, agree


@pytest.mark.gpu
def test_default_model_through_kernels(kernel_results):
    from awq_harness.awq_ref.data.models import DEFAULT_GROUP_SIZE, load_model, load_tokenizer
    from awq_harness.awq_ref.errors import ModelError

    try:
        fp16 = load_model("default", dtype=torch.float16)
        tokenizer = load_tokenizer("default")
    except (ModelError, ImportError) as err:
        pytest.skip(f"default model unavailable: {err}")
    quantised = quantised_copy(fp16, DEFAULT_GROUP_SIZE).half().cuda()
    fp16 = fp16.cuda()
    ids = tokenizer("The capital of France is Paris. The capital of Italy is", return_tensors="pt").input_ids.cuda()
    err, agree = logits_error(quantised, ids)
    assert err <= tolerance("logits", torch.float16), f"logits differ by {err:.3g} of their range"
    assert agree >= 0.9, f"greedy tokens agree on only {agree:.0%} of positions"
    with kernel_backend("triton"):
        record = decode_record("default", DEFAULT_GROUP_SIZE, quantised, fp16, ids, new_tokens=64,
                               device=torch.cuda.get_device_name(), dry_run=False)
    kernel_results.decode.append(record)


def test_tiny_model_dry_run(kernel_results, dry_mode):
    from awq_harness.awq_ref.data.tiny import tiny_model

    fp32 = tiny_model("llama", seed=1, hidden=64, intermediate=128, layers=1)
    quantised = quantised_copy(fp32, 32)
    ids = torch.randint(0, 512, (1, 5), generator=torch.Generator().manual_seed(1))
    err, agree = logits_error(quantised, ids)
    assert err <= tolerance("logits", torch.float32) and agree == 1.0
    with kernel_backend("triton"):
        record = decode_record("tiny-llama", 32, quantised, fp32.half(), ids, new_tokens=3,
                               device="cpu (TRITON_INTERPRET dry run)", dry_run=True)
    assert record["tokens_per_s"] > 0 and record["fp16_tokens_per_s"] > 0 and record["new_tokens"] == 3
    kernel_results.decode.append(record)

