"""awq_gemm (fused dequant + tl.dot, split-K) matches awq_ref within the stated bound."""
import torch
from hypothesis import example, given, settings

from awq_harness.kernels.gemm import GemmConfig, awq_gemm
from tests.kernels.oracle import Layer, assert_matches_reference, packed, random_activations, random_weight
from tests.kernels.strategies import EXAMPLES, MatmulCase, gemm_cases


def run_gemm(case: MatmulCase, config: GemmConfig, device: str) -> None:
    qw = random_weight(case.layer)
    t = {name: v.to(device) for name, v in packed(qw).items()}
    x = random_activations(case.m, case.layer.k, case.x_dtype, case.layer.seed).to(device)
    y = awq_gemm(x, t["qweight"], t["qzeros"], t["scales"], config)
    assert_matches_reference(y.cpu(), x.cpu(), qw, "gemm")


EDGE = [
    (MatmulCase(Layer(k=64, n=8, group_size=32, zero_point=True, seed=4), m=1, x_dtype=torch.float16),
     GemmConfig(16, 16, 32, 1)),
    (MatmulCase(Layer(k=130, n=40, group_size=-1, zero_point=False, seed=5), m=17, x_dtype=torch.float16),
     GemmConfig(16, 32, 64, 2)),  # K and N not block multiples, odd M, split-K
    (MatmulCase(Layer(k=256, n=24, group_size=128, zero_point=True, seed=6), m=33, x_dtype=torch.bfloat16),
     GemmConfig(32, 16, 64, 3)),
    (MatmulCase(Layer(k=128, n=64, group_size=64, zero_point=False, seed=7), m=5, x_dtype=torch.float32),
     GemmConfig(16, 64, 16, 1)),
    (MatmulCase(Layer(k=1, n=24, group_size=-1, zero_point=False, seed=5423), m=17, x_dtype=torch.float16),
     GemmConfig(16, 16, 16, 1)),  # fp16 outputs in the subnormal range (gradual underflow)
]


@settings(max_examples=EXAMPLES["gemm"])
@given(case_config=gemm_cases())
@example(case_config=EDGE[0])
@example(case_config=EDGE[1])
@example(case_config=EDGE[2])
@example(case_config=EDGE[3])
@example(case_config=EDGE[4])
def test_gemm_matches_reference(case_config, triton_device):
    run_gemm(*case_config, triton_device)


def test_gemm_default_config_matches_reference(triton_device):
    case = MatmulCase(Layer(k=192, n=56, group_size=64, zero_point=True, seed=8), m=23, x_dtype=torch.float16)
    qw = random_weight(case.layer)
    t = {name: v.to(triton_device) for name, v in packed(qw).items()}
    x = random_activations(case.m, case.layer.k, case.x_dtype, 8).to(triton_device)
    assert_matches_reference(awq_gemm(x, t["qweight"], t["qzeros"], t["scales"]).cpu(), x.cpu(), qw, "gemm")


def test_gemm_accepts_strided_activations(triton_device):
    layer = Layer(k=64, n=16, group_size=32, zero_point=True, seed=9)
    qw = random_weight(layer)
    t = {name: v.to(triton_device) for name, v in packed(qw).items()}
    wide = random_activations(64, 3, torch.float16, 9).to(triton_device).t()  # [3, 64], stride (1, 3)
    y = awq_gemm(wide, t["qweight"], t["qzeros"], t["scales"], GemmConfig(16, 16, 32, 1))
    assert_matches_reference(y.cpu(), wide.cpu(), qw, "gemm")
