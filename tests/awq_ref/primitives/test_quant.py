"""Group quantisation: the AutoAWQ formulas, checked by hand and as properties."""
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from awq_harness.awq_ref.primitives.quant import QuantError, QuantSpec, pseudo_quantize, quantize

GROUPS = st.sampled_from([32, 64, 128, -1])


def test_hand_computed_asymmetric_group():
    # One group of 4 weights, 2 bits: range [-1, 2] -> s = 3/3 = 1, z = -round(-1/1) = 1.
    w = torch.tensor([[-1.0, 0.4, 1.6, 2.0]])
    qw = quantize(w, QuantSpec(bits=2, group_size=4))
    assert qw.scales.tolist() == [[1.0]]
    assert qw.zeros.tolist() == [[1]]
    # codes: round(w/s) + z = [-1, 0, 2, 2] + 1 = [0, 1, 3, 3]
    assert qw.q.tolist() == [[0, 1, 3, 3]]
    assert qw.dequantize().tolist() == [[-1.0, 0.0, 2.0, 2.0]]


def test_hand_computed_symmetric_group():
    # 4 bits symmetric: s = max|w| / 7 = 7 / 7 = 1; code = round(w / s) + 8.
    w = torch.tensor([[-7.0, -0.5, 2.6, 7.0]])
    qw = quantize(w, QuantSpec(bits=4, group_size=4, zero_point=False))
    assert qw.scales.tolist() == [[1.0]] and qw.zeros.tolist() == [[8]]
    assert qw.q.tolist() == [[1, 8, 11, 15]]  # round(-0.5) = -0 (half to even)


@given(n=st.sampled_from([8, 16]), k_groups=st.integers(1, 4), group=GROUPS, bits=st.integers(2, 8),
       zero_point=st.booleans(), seed=st.integers(0, 2**16))
def test_codes_in_range_and_error_bounded(n, k_groups, group, bits, zero_point, seed):
    k = 128 * k_groups if group == -1 else group * k_groups
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    spec = QuantSpec(bits, group, zero_point)
    qw = quantize(w, spec)
    assert qw.q.min() >= 0 and qw.q.max() <= 2**bits - 1
    assert qw.zeros.min() >= 0 and qw.zeros.max() <= 2**bits - 1
    err = (qw.dequantize(torch.float64) - w).abs()
    step = qw.scales.repeat_interleave(qw.group_width, dim=1)
    assert (err <= step / 2 * (1 + 1e-9)).all()  # every weight lies on or between grid points
    codes, g = qw.q.reshape(-1, qw.group_width), qw.group_width
    if zero_point:  # groups straddle 0 for randn with >= 32 elements: the grid spans [min, max]
        assert (codes.amin(1) == 0).all() and (codes.amax(1) >= 2**bits - 2).all()
    else:  # symmetric: zero 2^(b-1), code 0 (-2^(b-1)) never needed, the largest |w| on the grid
        assert (qw.zeros == 2 ** (bits - 1)).all() and codes.min() >= 1
        peak = w.abs().reshape(-1, g).argmax(1, keepdim=True)
        assert (err.reshape(-1, g).gather(1, peak) <= 1e-12 * w.abs().reshape(-1, g).gather(1, peak)).all()


@given(seed=st.integers(0, 2**16), group=GROUPS, zero_point=st.booleans())
def test_pseudo_quantize_is_quantize_then_dequantize(seed, group, zero_point):
    w = torch.randn(16, 256, generator=torch.Generator().manual_seed(seed))
    spec = QuantSpec(4, group, zero_point)
    assert torch.equal(pseudo_quantize(w, spec), quantize(w, spec).dequantize(w.dtype))


@given(seed=st.integers(0, 2**16), group=GROUPS)
def test_fp16_storage_scales_are_the_ones_used(seed, group):
    w = torch.randn(8, 256, generator=torch.Generator().manual_seed(seed))
    qw = quantize(w, QuantSpec(4, group), scale_dtype=torch.float16)
    assert qw.scales.dtype == torch.float16
    # Every code is the nearest one for the stored (fp16) scale and zero.
    s = qw.scales.float().repeat_interleave(qw.group_width, dim=1)
    z = qw.zeros.float().repeat_interleave(qw.group_width, dim=1)
    assert torch.equal(qw.q.float(), torch.clamp(torch.round(w / s) + z, 0, 15))


def test_constant_group_does_not_divide_by_zero():
    qw = quantize(torch.zeros(8, 64), QuantSpec(4, 64))
    assert torch.isfinite(qw.scales).all() and (qw.scales > 0).all()
    assert torch.equal(qw.dequantize(), torch.zeros(8, 64))


@pytest.mark.parametrize("bad", [dict(bits=1), dict(bits=9), dict(group_size=0)])
def test_bad_spec_rejected(bad):
    with pytest.raises(QuantError):
        QuantSpec(**bad)


def test_group_must_divide_inputs():
    with pytest.raises(QuantError, match="not divisible"):
        quantize(torch.randn(8, 96), QuantSpec(4, 64))


def test_non_finite_weight_rejected():
    w = torch.randn(8, 64)
    w[3, 5] = float("nan")
    with pytest.raises(QuantError, match="NaN"):
        quantize(w, QuantSpec(4, 64))
