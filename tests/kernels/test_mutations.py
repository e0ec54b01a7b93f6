"""Deliberately broken kernel variants must be caught by the property checks.

Each mutation changes what a correct kernel receives, never the kernel's code:
  wrong_nibble_order  qweight and qzeros packed in natural order instead of AWQ's (0,2,4,6,1,3,5,7),
                      i.e. what a kernel unpacking with the wrong order would see
  zero_off_by_one     every zero nibble + 1 (mod 16), a GPTQ-v1 style off-by-one
  drop_last_k_block   the launch's K argument shortened so the last BLOCK_K rows are never read
Each one runs the same hypothesis property as the real tests (same strategies, same oracle,
same tolerance table, NaN-poisoned buffers) on MUTATION_EXAMPLES fresh examples, and every
single example must fail the property; a control run without mutation must pass them all.
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings

import awq_harness.kernels.dequant  # noqa: F401 - kernels.dequant is used through kernels
import awq_harness.kernels.gemm  # noqa: F401 - kernels.gemm is used through kernels
import awq_harness.kernels.gemv  # noqa: F401 - kernels.gemv is used through kernels
from awq_harness import kernels
from awq_harness.awq_ref.formats.awq_gemm import ORDER
from awq_harness.awq_ref.formats.nibbles import NATURAL_ORDER, pack_last, unpack_last
from tests.kernels.oracle import (
    assert_dequant_exact,
    assert_matches_reference,
    packed,
    random_activations,
    random_weight,
)
from tests.kernels.strategies import gemm_cases, gemv_cases, layers

MUTATION_EXAMPLES = 8  # a mutation must be caught quickly, not after a long search
KERNEL_OBJECTS = {"dequantize": (kernels.dequant, "awq_dequantize_kernel"),
           "gemm": (kernels.gemm, "awq_gemm_kernel"), "gemv": (kernels.gemv, "awq_gemv_kernel")}


def wrong_nibble_order(t: dict) -> dict:
    repack = lambda words: pack_last(unpack_last(words, 4, ORDER), 4, NATURAL_ORDER)  # noqa: E731
    return {**t, "qweight": repack(t["qweight"]), "qzeros": repack(t["qzeros"])}


def zero_off_by_one(t: dict) -> dict:
    zeros = (unpack_last(t["qzeros"], 4, ORDER) + 1) % 16
    return {**t, "qzeros": pack_last(zeros, 4, ORDER)}


class ShortenedK:
    """Stands in for a @triton.jit kernel and launches it with K cut to drop the last K block."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        launch, k_index = self.kernel[grid], self.kernel.arg_names.index("K")

        def run(*args, **meta):
            args = list(args)
            args[k_index] = (args[k_index] - 1) // meta["BLOCK_K"] * meta["BLOCK_K"]
            return launch(*args, **meta)
        return run


def _run(kernel: str, case_or_layer, config, mutate_inputs, device: str) -> None:
    """One property example, as in the real tests, with the inputs passed through a mutation."""
    layer = case_or_layer if kernel == "dequantize" else case_or_layer.layer
    qw = random_weight(layer)
    t = {name: v.to(device) for name, v in mutate_inputs(packed(qw)).items()}
    if kernel == "dequantize":
        w = kernels.dequant.awq_dequantize(t["qweight"], t["qzeros"], t["scales"], torch.float16,
                                           block_k=16, block_n=32)
        return assert_dequant_exact(w.cpu(), qw, torch.float16)
    case = case_or_layer
    x = random_activations(case.m, layer.k, case.x_dtype, layer.seed)
    fn = kernels.gemm.awq_gemm if kernel == "gemm" else kernels.gemv.awq_gemv
    y = fn(x.to(device), t["qweight"], t["qzeros"], t["scales"], config)
    assert_matches_reference(y.cpu(), x, qw, kernel)


def _property(kernel: str, mutate_inputs, expect_caught: bool, device: str):
    """The kernel's hypothesis property on mutated inputs; with ``expect_caught`` every
    example must fail it (AssertionError), otherwise every example must pass it."""
    strategy = {"dequantize": layers(), "gemm": gemm_cases(), "gemv": gemv_cases()}[kernel]

    @settings(max_examples=MUTATION_EXAMPLES, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(drawn=strategy)
    def prop(drawn):
        case, config = (drawn, None) if kernel == "dequantize" else drawn
        if not expect_caught:
            return _run(kernel, case, config, mutate_inputs, device)
        with pytest.raises(AssertionError):
            _run(kernel, case, config, mutate_inputs, device)
    return prop


@pytest.mark.parametrize("kernel", list(KERNEL_OBJECTS))
def test_unmutated_property_passes(kernel, triton_device):
    _property(kernel, lambda t: t, expect_caught=False, device=triton_device)()


@pytest.mark.parametrize("kernel", list(KERNEL_OBJECTS))
@pytest.mark.parametrize("mutation", [wrong_nibble_order, zero_off_by_one], ids=lambda f: f.__name__)
def test_input_mutation_is_caught(kernel, mutation, triton_device):
    _property(kernel, mutation, expect_caught=True, device=triton_device)()


@pytest.mark.parametrize("kernel", list(KERNEL_OBJECTS))
def test_dropped_last_k_block_is_caught(kernel, monkeypatch, triton_device):
    module, name = KERNEL_OBJECTS[kernel]
    monkeypatch.setattr(module, name, ShortenedK(getattr(module, name)))
    _property(kernel, lambda t: t, expect_caught=True, device=triton_device)()
