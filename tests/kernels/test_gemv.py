"""awq_gemv (decode: fp32 FMA, split-K) matches awq_ref within the stated bound."""
import pytest
import torch
from hypothesis import example, given, settings

from awq_harness.kernels.gemv import MAX_ROWS, GemvConfig, awq_gemv
from tests.kernels.oracle import Layer, assert_matches_reference, packed, random_activations, random_weight
from tests.kernels.strategies import EXAMPLES, MatmulCase, gemv_cases


def run_gemv(case: MatmulCase, config: GemvConfig | None, device: str) -> None:
    qw = random_weight(case.layer)
    t = {name: v.to(device) for name, v in packed(qw).items()}
    x = random_activations(case.m, case.layer.k, case.x_dtype, case.layer.seed).to(device)
    y = awq_gemv(x, t["qweight"], t["qzeros"], t["scales"], config)
    assert_matches_reference(y.cpu(), x.cpu(), qw, "gemv")


EDGE = [
    (MatmulCase(Layer(k=32, n=8, group_size=32, zero_point=True, seed=10), m=1, x_dtype=torch.float16),
     GemvConfig(16, 32, 1)),
    (MatmulCase(Layer(k=77, n=40, group_size=-1, zero_point=False, seed=11), m=3, x_dtype=torch.float16),
     GemvConfig(32, 16, 4)),  # K, N not block multiples, odd M, split-K beyond the K blocks
    (MatmulCase(Layer(k=256, n=96, group_size=128, zero_point=True, seed=12), m=MAX_ROWS, x_dtype=torch.bfloat16),
     GemvConfig(64, 64, 2)),
]


@settings(max_examples=EXAMPLES["gemv"])
@given(case_config=gemv_cases())
@example(case_config=EDGE[0])
@example(case_config=EDGE[1])
@example(case_config=EDGE[2])
def test_gemv_matches_reference(case_config, triton_device):
    run_gemv(*case_config, triton_device)


@pytest.mark.parametrize("m", [1, 2, 7, MAX_ROWS])
def test_gemv_default_config_matches_reference(m, triton_device):
    case = MatmulCase(Layer(k=256, n=48, group_size=64, zero_point=True, seed=13 + m), m=m, x_dtype=torch.float16)
    run_gemv(case, None, triton_device)
