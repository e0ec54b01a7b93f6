"""Each layout's ``dims`` reads its own shape table backwards, and ``fits`` tells layouts apart."""
from hypothesis import given
from hypothesis import strategies as st

from awq_harness.awq_ref.formats import FORMATS
from awq_harness.awq_ref.formats.dims import Dims
from awq_harness.awq_ref.formats.fit import expected_shapes, fits


@st.composite
def layers(draw):
    """(k, n, group width) that every layout can store: N, K multiples of 8, G dividing K (GEMV:
    G in 32, 64 or >= 128, so one group per channel needs K >= 128)."""
    gw = draw(st.sampled_from([32, 64, 128, 256]))
    k = gw * draw(st.integers(1, 40))
    per_channel = draw(st.booleans()) and k >= 128
    return k, 8 * draw(st.integers(1, 64)), k if per_channel else gw


def _values(name, k, n):
    return {"weight_shape": (n, k)} if name == "compressed-tensors" else {}


@given(layer=layers())
def test_dims_invert_the_shape_table(layer):
    k, n, gw = layer
    for name, fmt in FORMATS.items():
        got = fmt.dims(fmt.shapes(k, n, gw), _values(name, k, n))
        groups = None if name == "gemv" else k // gw  # GEMV pads its scales: the count is not stored
        assert got == Dims(n=n, k=k, groups=groups, pack=8), name
        assert got.bits == 4 and got.group_width() == (None if name == "gemv" else gw)


@given(layer=layers())
def test_the_first_layout_that_fits_is_the_one_that_wrote_them(layer):
    """The verifier's guess walks FORMATS in order. Shapes alone can be ambiguous (GEMV's
    [N, K/8] qweight is GPTQ's [K/8, N] when N = K/8; GPTQ's g_idx then tells them apart),
    but never so that an earlier layout claims a later one's tensors."""
    k, n, gw = layer
    for name, fmt in FORMATS.items():
        stored = fmt.shapes(k, n, gw) | fmt.optional_shapes(k, n)
        assert expected_shapes(fmt, Dims(n, k, k // gw, 8), gw) == stored
        claims = [other for other, o in FORMATS.items() if fits(o, stored, _values(other, k, n), gw)]
        assert claims[0] == name


def test_shapes_missing_the_packed_tensor_have_no_dims():
    for fmt in FORMATS.values():
        shapes = {s: v for s, v in fmt.shapes(256, 64, 64).items() if s != fmt.PACKED}
        assert fmt.dims(shapes, {}) is None


def test_gemm_without_scales_reads_n_from_the_packed_words():
    assert FORMATS["gemm"].dims({"qweight": (256, 8)}) == Dims(n=64, k=256, groups=None, pack=8)


def test_a_wrong_group_count_does_not_fit():
    fmt = FORMATS["gemm"]
    stored = fmt.shapes(256, 64, 64) | {"qzeros": (3, 8)}
    assert not fits(fmt, stored, {}, 64)
