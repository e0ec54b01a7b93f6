"""The search's fast quantise-dequantise is bit-identical to the reference quantiser."""
import pytest
import torch

from awq_harness.awq_ref.methods.awq.fakequant import fake_quantize
from awq_harness.awq_ref.primitives.quant import QuantSpec, pseudo_quantize


@pytest.mark.parametrize("bits", [3, 4, 8])
@pytest.mark.parametrize("group", [32, 64, -1])
@pytest.mark.parametrize("zero_point", [True, False])
def test_fake_quantize_equals_pseudo_quantize(bits, group, zero_point):
    gen = torch.Generator().manual_seed(bits * 100 + group)
    w = torch.randn(48, 128, generator=gen) * torch.exp(torch.randn(128, generator=gen))
    w[0, :32] = 0.0  # a flat group: exercises the 1e-5 range clamp
    spec = QuantSpec(bits, group, zero_point)
    assert torch.equal(fake_quantize(w, spec), pseudo_quantize(w, spec))
