"""awq_dequantize is bit-exact against awq_ref on random layers of every group size."""
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from awq_harness.kernels import awq_dequantize
from tests.kernels.oracle import Layer, assert_dequant_exact, packed, random_weight
from tests.kernels.strategies import EXAMPLES, layers

EDGES = [
    Layer(k=32, n=8, group_size=32, zero_point=True, seed=1),  # one word, one group
    Layer(k=200, n=40, group_size=-1, zero_point=False, seed=2),  # per channel, K not a block multiple
    Layer(k=256, n=72, group_size=128, zero_point=True, seed=3, scale_dtype=torch.bfloat16),
]


def run_dequantize(layer, dtype, block_k, block_n, device):
    qw = random_weight(layer)
    t = {name: v.to(device) for name, v in packed(qw).items()}
    w = awq_dequantize(t["qweight"], t["qzeros"], t["scales"], dtype, block_k=block_k, block_n=block_n)
    assert_dequant_exact(w.cpu(), qw, dtype)


@settings(max_examples=EXAMPLES["dequantize"])
@given(layer=layers(), dtype=st.sampled_from([torch.float16, torch.float32]),
       block_k=st.sampled_from([16, 32, 64]), block_n=st.sampled_from([8, 16, 32, 64]))
@example(layer=EDGES[0], dtype=torch.float16, block_k=32, block_n=64)
@example(layer=EDGES[1], dtype=torch.float32, block_k=64, block_n=16)
@example(layer=EDGES[2], dtype=torch.float16, block_k=16, block_n=32)
def test_dequantize_is_bit_exact(layer, dtype, block_k, block_n, triton_device):
    run_dequantize(layer, dtype, block_k, block_n, triton_device)
