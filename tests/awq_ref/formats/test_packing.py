"""Packing layouts: bit-exact round trips and the exact nibble order AutoAWQ writes."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from awq_harness.awq_ref.formats import awq_gemm, awq_gemv, layout
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize


def test_gemm_word_matches_hand_computed_nibble_order():
    # Output channels 0..7 of one input row carry codes 1..8. AutoAWQ's order [0,2,4,6,1,3,5,7]
    # puts channel 0 in bits 0-3, channel 2 in bits 4-7, ..., channel 7 in bits 28-31:
    # nibbles from high to low are ch7 ch5 ch3 ch1 ch6 ch4 ch2 ch0 = 8 6 4 2 7 5 3 1.
    codes = torch.arange(1, 9, dtype=torch.int32)[None, :]
    word = pack_last(codes, 4, awq_gemm.ORDER)
    assert word.item() == 0x86427531 - 2**32  # int32 two's complement of 0x86427531
    assert torch.equal(unpack_last(word, 4, awq_gemm.ORDER), codes)


def test_gemv_word_is_natural_order():
    codes = torch.arange(1, 9, dtype=torch.int32)[None, :]
    assert pack_last(codes, 4).item() == 0x87654321 - 2**32


def test_gemv_zero_width_matches_autoawq_table():
    assert awq_gemv.zeros_width(11008, 128) == 11  # 86 groups -> scales [N, 88], 2 padded columns
    assert awq_gemv.zeros_width(576, 64) == 2      # 9 groups -> 2 words, multiple of 2
    assert awq_gemv.zeros_width(256, 32) == 4      # 8 groups -> 1 word, rounded up to 4
    assert awq_gemv.zeros_width(4096, 4096) == 1   # per channel


@given(bits=st.sampled_from([2, 4, 8]), rows=st.integers(1, 5), words=st.integers(1, 6), seed=st.integers(0, 2**16),
       data=st.data())
def test_nibbles_round_trip_any_permutation(bits, rows, words, seed, data):
    per_word = 32 // bits
    order = tuple(data.draw(st.permutations(range(per_word))))
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (rows, words * per_word), generator=gen, dtype=torch.int32)
    assert torch.equal(unpack_last(pack_last(codes, bits, order), bits, order), codes)


def _random_quantized(n, k, group, zero_point, seed):
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    return quantize(w, QuantSpec(4, group, zero_point), scale_dtype=torch.float16)


SHAPES = st.tuples(st.integers(1, 6).map(lambda i: 8 * i), st.integers(1, 4))


@given(shape=SHAPES, group=st.sampled_from([32, 64, 128, -1]), zero_point=st.booleans(),
       version=st.sampled_from(["gemm", "gemv"]), seed=st.integers(0, 2**16))
def test_layout_round_trip_and_dequantisation_are_bit_exact(shape, group, zero_point, version, seed):
    n, k_groups = shape
    k = 128 * k_groups if group == -1 else group * k_groups
    qw = _random_quantized(n, k, group, zero_point, seed)
    module = layout(version)
    tensors = module.pack(qw)
    expected = module.shapes(k, n, qw.group_width)
    assert {name: tuple(t.shape) for name, t in tensors.items()} == expected
    assert tensors["qweight"].dtype == tensors["qzeros"].dtype == torch.int32
    assert tensors["scales"].dtype == torch.float16
    back = module.unpack(tensors, qw.spec)
    assert torch.equal(back.q, qw.q) and torch.equal(back.zeros, qw.zeros)
    assert torch.equal(back.scales, qw.scales)
    assert torch.equal(back.dequantize(), qw.dequantize())


def test_gemv_padding_is_zero():
    qw = _random_quantized(16, 576, 64, True, 0)  # 9 groups padded to 16 columns
    tensors = awq_gemv.pack(qw)
    assert (tensors["scales"][:, 9:] == 0).all()
    assert (unpack_last(tensors["qzeros"], 4)[:, 9:] == 0).all()


def test_gemm_layout_transposes_against_gemv():
    qw = _random_quantized(16, 128, 64, True, 1)
    gemm, gemv = awq_gemm.pack(qw), awq_gemv.pack(qw)
    assert torch.equal(unpack_last(gemm["qweight"], 4, awq_gemm.ORDER).t(), unpack_last(gemv["qweight"], 4))


@pytest.mark.parametrize("version", ["gemm", "gemv"])
def test_only_four_bits_pack(version):
    qw = quantize(torch.randn(8, 64), QuantSpec(3, 64))
    with pytest.raises(ValueError, match="4-bit"):
        layout(version).pack(qw)


def test_out_of_range_codes_are_refused_not_smeared():
    with pytest.raises(ValueError, match="outside"):
        pack_last(torch.tensor([[16, 0, 0, 0, 0, 0, 0, 0]]), 4)


def test_gemm_needs_out_features_multiple_of_8():
    with pytest.raises(ValueError, match="multiple of 8"):
        awq_gemm.pack(quantize(torch.randn(12, 64), QuantSpec(4, 64)))


def test_unknown_version():
    with pytest.raises(ValueError, match="unknown AWQ version"):
        layout("marlin")


def test_column_nibble_table_inverts_the_gemm_order():
    # The kernels read COLUMN_NIBBLE_WORD as an int32 constant: nibble c = the nibble of column c.
    assert all(awq_gemm.ORDER[awq_gemm.COLUMN_NIBBLE[c]] == c for c in range(8))
    word = awq_gemm.COLUMN_NIBBLE_WORD
    assert 0 <= word < 2**31 and [(word >> (4 * c)) & 0xF for c in range(8)] == list(awq_gemm.COLUMN_NIBBLE)
    codes = torch.arange(1, 9, dtype=torch.int32)[None, :]
    packed = pack_last(codes, 4, awq_gemm.ORDER).item()
    assert [(packed >> (4 * awq_gemm.COLUMN_NIBBLE[c])) & 0xF for c in range(8)] == list(range(1, 9))
