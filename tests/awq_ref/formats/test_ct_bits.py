"""compressed-tensors pack-quantized at 4 and 8 bits: round trips, the shape table, the word
layout (code i of a word in bits [b*i, b*(i+1))), and one config group per scheme."""
import pytest
import torch

from awq_harness.awq_ref.formats import compressed_tensors as ct
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("zero_point", [True, False], ids=["asym", "sym"])
@pytest.mark.parametrize("n, k, g", [(16, 64, 32), (12, 40, 8), (24, 96, -1)])
def test_round_trip_and_shape_table(bits, zero_point, n, k, g):
    spec = QuantSpec(bits, g, zero_point)
    qw = quantize(torch.randn(n, k, generator=torch.Generator().manual_seed(n * k)), spec)
    packed = ct.pack(qw)
    back = ct.unpack(packed, spec)
    assert torch.equal(back.q, qw.q) and torch.equal(back.zeros, qw.zeros)
    assert torch.equal(back.scales, qw.scales.to(torch.float16))
    want = ct.shapes(k, n, spec.group_width(k), bits)
    assert all(tuple(t.shape) == want[name] for name, t in packed.items())
    assert ("weight_zero_point" in packed) == zero_point


def test_eight_bit_word_holds_four_codes_low_byte_first():
    codes = torch.tensor([[1, 2, 3, 200]], dtype=torch.int32)
    qw = ct.QuantizedWeight(codes, torch.ones(1, 1), torch.zeros(1, 1, dtype=torch.int32), QuantSpec(8, -1, False))
    assert ct.pack(qw)["weight_packed"].item() == (200 << 24 | 3 << 16 | 2 << 8 | 1) - 2**32


def test_symmetric_zero_is_half_the_code_range():
    assert ct.symmetric_zero(4) == 8 and ct.symmetric_zero(8) == 128


def test_mixed_config_has_one_group_per_scheme_with_its_targets():
    cfg = ct.mixed_quantization_config([(QuantSpec(4, 64), ["Linear"]),
                                        (QuantSpec(8, 64), ["re:model[.]layers[.]3[.].*"])])
    groups = cfg["config_groups"]
    assert [g["weights"]["num_bits"] for g in groups.values()] == [4, 8]
    assert groups["group_1"]["targets"] == ["re:model[.]layers[.]3[.].*"]
    assert ct.quantization_config(QuantSpec(4, 64))["config_groups"] == {"group_0": groups["group_0"]}
    with pytest.raises(ValueError):
        ct.mixed_quantization_config([(QuantSpec(3, 64), ["Linear"])])
