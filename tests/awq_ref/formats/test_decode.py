"""Every layout packs and decodes back bit for bit, and its decode pieces (scales and zeros in
[N, groups], a bounded still-packed sample) agree with the quantised weight they came from."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from awq_harness.awq_ref.formats import FORMATS, compressed_tensors, gptq
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize


def _quantized(n, k, group, zero_point, seed):
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    return quantize(w, QuantSpec(4, group, zero_point), scale_dtype=torch.float16)


def _variant(name, zero_point):
    """GPTQ v1 cannot store a zero of 0, so asymmetric weights go to v2."""
    return ("gptq_v2" if zero_point else "gptq") if name == "gptq" else None


def _pack(name, qw, variant):
    fmt = FORMATS[name]
    return fmt.pack(qw, checkpoint_format=variant) if variant else fmt.pack(qw)


CASES = st.tuples(st.integers(1, 6).map(lambda i: 8 * i), st.integers(1, 4), st.sampled_from([32, 64, 128]),
                  st.booleans(), st.integers(0, 2**16))


@settings(max_examples=30, deadline=None)
@given(case=CASES)
def test_pack_decode_round_trip_in_every_layout(case):
    n, groups, gw, zero_point, seed = case
    k = gw * groups
    qw = _quantized(n, k, gw, zero_point, seed)
    for name, fmt in FORMATS.items():
        variant = _variant(name, zero_point)
        tensors = _pack(name, qw, variant)
        assert {s: tuple(t.shape) for s, t in tensors.items()} == {
            s: v for s, v in fmt.shapes(k, n, gw).items() if s in tensors}, name
        back = fmt.decode(tensors, qw.spec, variant)
        assert torch.equal(back.q, qw.q) and torch.equal(back.zeros, qw.zeros), name
        assert torch.equal(back.scales, qw.scales) and torch.equal(back.dequantize(), qw.dequantize()), name
        scales, zeros = fmt.scales_zeros(tensors, groups, variant)
        assert torch.equal(scales, qw.scales) and torch.equal(zeros, qw.zeros), name


@pytest.mark.parametrize("name", list(FORMATS))
def test_sample_decodes_to_the_leading_channels_and_groups(name):
    qw = _quantized(64, 512, 64, True, 3)
    variant = _variant(name, True)
    fmt = FORMATS[name]
    part = fmt.decode(fmt.sample(_pack(name, qw, variant), 16, 3, 64), qw.spec, variant)
    assert torch.equal(part.q, qw.q[:16, :192])
    assert torch.equal(part.zeros, qw.zeros[:16, :3]) and torch.equal(part.scales, qw.scales[:16, :3])


def test_gptq_v1_adds_back_the_one_it_took_off():
    qw = _quantized(16, 128, 64, False, 0)  # symmetric: every zero 8, stored 7 in v1
    tensors = gptq.pack(qw, checkpoint_format="gptq")
    assert (gptq.scales_zeros(tensors, 2, "gptq")[1] == 8).all()
    assert (gptq.scales_zeros(tensors, 2, None)[1] == 8).all()  # v1 is the default
    assert (gptq.scales_zeros(tensors, 2, "gptq_v2")[1] == 7).all()
    with pytest.raises(ValueError, match="checkpoint_format"):
        gptq.decode(tensors, qw.spec, "gptq_v3")


def test_compressed_tensors_reads_unpacked_int8_zero_points():
    qw = _quantized(16, 128, 32, True, 1)
    tensors = compressed_tensors.pack(qw)
    old = {**tensors, "weight_zero_point": (qw.zeros - 8).to(torch.int8)}  # older compressed-tensors releases
    assert torch.equal(compressed_tensors.decode(old, qw.spec).zeros, qw.zeros)
    assert torch.equal(compressed_tensors.scales_zeros(old, 4)[1], qw.zeros)
    sample = compressed_tensors.sample(old, 8, 2, 32)
    assert torch.equal(compressed_tensors.decode(sample, qw.spec).zeros, qw.zeros[:8, :2])


def test_symmetric_compressed_tensors_has_no_zero_tensor_and_decodes_zero_8():
    qw = _quantized(16, 128, 64, False, 2)
    tensors = compressed_tensors.pack(qw)
    assert "weight_zero_point" not in tensors
    assert (compressed_tensors.scales_zeros(tensors, 2)[1] == 8).all()
