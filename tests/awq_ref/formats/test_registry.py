"""The registry of format names, and what every layout module promises (awq_ref.formats)."""
import pytest

from awq_harness.awq_ref.formats import AWQ_VERSIONS, FORMATS, awq_gemm, awq_gemv, compressed_tensors, get, gptq, layout
from awq_harness.awq_ref.formats.fit import suffixes


def test_one_vocabulary_of_names_the_clis():
    assert list(FORMATS) == ["gemm", "gemv", "compressed-tensors", "gptq"]
    assert [m.NAME for m in FORMATS.values()] == list(FORMATS)
    assert AWQ_VERSIONS == ("gemm", "gemv")
    assert get("gptq") is gptq and get("compressed-tensors") is compressed_tensors


@pytest.mark.parametrize("name", ["awq-gemm", "awq-gemv", "GEMM", "pack-quantized"])
def test_other_names_are_refused(name):
    with pytest.raises(ValueError, match="unknown format"):
        get(name)


def test_awq_versions_are_case_insensitive_and_only_awq():
    assert layout("GEMM") is awq_gemm and layout("gemv") is awq_gemv
    with pytest.raises(ValueError, match="unknown AWQ version"):
        layout("gptq")


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=list(FORMATS))
def test_tensor_sets_are_consistent(fmt):
    assert fmt.PACKED in fmt.REQUIRED and set(fmt.REQUIRED) <= set(fmt.DTYPES)
    assert {fmt.SCALES, fmt.ZEROS} <= set(fmt.TENSOR_NAMES) <= set(fmt.DTYPES)
    for optional in (fmt.ASYMMETRIC_ONLY, fmt.RECOMMENDED):
        assert set(optional) <= set(fmt.DTYPES) and not set(optional) & set(fmt.REQUIRED)
    assert set(fmt.VALUES) <= set(fmt.REQUIRED)  # dims cannot do without them
    assert set(fmt.shapes(256, 64, 64)) | set(fmt.optional_shapes(256, 64)) <= suffixes(fmt)
    assert fmt.PACK_AXIS in ("in", "out")


@pytest.mark.parametrize("n,k,flagged", [
    (12, 64, {"gemm": ["qweight"], "gptq": ["qzeros"]}),
    (16, 60, {"gemv": ["qweight"], "gptq": ["qweight"]}),
    (16, 64, {}),
])
def test_alignment_names_the_tensor_that_cannot_pack(n, k, flagged):
    found = {name: [s for s, _ in fmt.alignment(n, k)] for name, fmt in FORMATS.items()}
    assert {name: s for name, s in found.items() if s} == flagged
    for fmt in FORMATS.values():
        assert all("divisible by" in reason for _, reason in fmt.alignment(n, k))
