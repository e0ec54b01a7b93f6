"""Our AWQ kernels against vLLM's on the benchmark shapes (Llama-2-7B, Llama-3-8B, Llama-2-70B;
M in 1..1024), when vLLM is installed on the GPU runner; skipped with the reason otherwise.

vLLM's Triton AWQ GEMM (``awq_gemm_triton``) reads the same AutoAWQ GEMM layout, so both run
on the same tensors: the outputs must agree, and each gets a ``kernel_speedups`` record (its
speed-up over fp16 torch.matmul, with the roofline bound beside it) for the report, where the
targets (at least vLLM's Triton GEMM at every M) are read. awq_marlin reads Marlin's own layout:
the same tensors go through vLLM's ``AWQMarlinLinearMethod`` (its ``process_weights_after_loading``
repacks codes, scales and zeros the way vLLM does after loading a checkpoint; ``apply`` runs the
kernel), so the comparison follows whatever ops that vLLM version calls."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from awq_harness.kernels import awq_linear, choose_path
from awq_harness.kernels.bench.records import make_record, send_to_report
from awq_harness.kernels.bench.runner import random_layer
from awq_harness.kernels.bench.shapes import bench_cases
from awq_harness.kernels.bench.timing import median_ms

pytestmark = pytest.mark.gpu
CASES = [c for c in bench_cases(dry_run=False) if c.kernel == "awq_linear"]
VLLM_KERNEL = "vllm-awq-triton"
MARLIN_KERNEL = "vllm-awq-marlin"


def _vllm_awq_triton():
    try:
        from vllm.model_executor.layers.quantization.awq_triton import awq_gemm_triton
    except ImportError as err:
        pytest.skip(f"vLLM is not installed on this runner ({err})")
    return awq_gemm_triton


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_against_vllm_triton_awq_gemm(case):
    vllm_gemm = _vllm_awq_triton()
    t = random_layer(case, "cuda")
    x = torch.randn(case.m, case.k, generator=torch.Generator().manual_seed(1)).half().cuda()
    w16 = torch.randn(case.k, case.n, generator=torch.Generator().manual_seed(2)).half().cuda()
    ours = lambda: awq_linear(x, t["qweight"], t["qzeros"], t["scales"])  # noqa: E731
    theirs = lambda: vllm_gemm(x, t["qweight"], t["scales"], t["qzeros"], 8)  # noqa: E731
    torch.testing.assert_close(theirs().float(), ours().float(), rtol=2e-2, atol=2e-2)
    ref_ms, _ = median_ms(lambda: torch.matmul(x, w16), dry_run=False)
    ours_ms, timer = median_ms(ours, dry_run=False)
    theirs_ms, _ = median_ms(theirs, dry_run=False)
    device = torch.cuda.get_device_name()
    record = make_record(dataclasses.replace(case, kernel=VLLM_KERNEL), VLLM_KERNEL, theirs_ms, ref_ms, device,
                         False, timer)
    send_to_report(record)
    print(f"\n{case.key}: ours ({choose_path(case.m)}) {ours_ms:.4f} ms, vLLM Triton {theirs_ms:.4f} ms, "
          f"fp16 {ref_ms:.4f} ms, bound {record['bound']:.2f}x")


def _vllm_awq_marlin(case, t):
    """vLLM's awq_marlin linear on ``t`` (AutoAWQ GEMM tensors), prepared as vLLM prepares a loaded layer."""
    try:
        from vllm.model_executor.layers.quantization.awq_marlin import AWQMarlinConfig, AWQMarlinLinearMethod
    except ImportError as err:
        pytest.skip(f"vLLM is not installed on this runner ({err})")
    config = AWQMarlinConfig.from_config({"quant_method": "awq", "bits": 4, "group_size": case.group_size,
                                          "zero_point": True})
    layer = torch.nn.Module()
    for name in ("qweight", "qzeros", "scales"):
        layer.register_parameter(name, torch.nn.Parameter(t[name].clone(), requires_grad=False))
    layer.input_size_per_partition, layer.output_size_per_partition = case.k, case.n
    layer.num_groups = case.k // case.group_size
    method = AWQMarlinLinearMethod(config)
    method.process_weights_after_loading(layer)
    return lambda x: method.apply(layer, x)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_against_vllm_awq_marlin(case):
    t = random_layer(case, "cuda")
    marlin = _vllm_awq_marlin(case, t)
    x = torch.randn(case.m, case.k, generator=torch.Generator().manual_seed(1)).half().cuda()
    w16 = torch.randn(case.k, case.n, generator=torch.Generator().manual_seed(2)).half().cuda()
    ours = lambda: awq_linear(x, t["qweight"], t["qzeros"], t["scales"])  # noqa: E731
    torch.testing.assert_close(marlin(x).float(), ours().float(), rtol=2e-2, atol=2e-2)
    ref_ms, _ = median_ms(lambda: torch.matmul(x, w16), dry_run=False)
    marlin_ms, timer = median_ms(lambda: marlin(x), dry_run=False)
    record = make_record(dataclasses.replace(case, kernel=MARLIN_KERNEL), MARLIN_KERNEL, marlin_ms, ref_ms,
                         torch.cuda.get_device_name(), False, timer)
    send_to_report(record)
    print(f"\n{case.key}: vLLM awq_marlin {marlin_ms:.4f} ms, fp16 {ref_ms:.4f} ms, bound {record['bound']:.2f}x")
