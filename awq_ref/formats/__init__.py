"""On-disk layouts of quantised linears: one module per layout, one registry of their names.

The names are the CLI's (``--format``, ``convert --to``) and the verifier's: "gemm" and "gemv"
(AutoAWQ's ``version``), "compressed-tensors", "gptq". Every module in ``FORMATS`` has:

    NAME, TENSOR_NAMES, REQUIRED, PACKED, SCALES, ZEROS   tensor suffixes
    DTYPES        {suffix: allowed safetensors dtype names}
    PACK_AXIS     "out" (codes packed along N) or "in" (along K)
    ASYMMETRIC_ONLY   suffixes present exactly when zero points are stored (else empty)
    RECOMMENDED       suffixes optional on disk that some loaders require
    VALUES            small tensors whose values ``dims`` reads (compressed-tensors' weight_shape)
    shapes(k, n, group_width), optional_shapes(k, n)      the shape table
    dims(shapes, values) -> Dims | None                   the shape table read backwards
    alignment(n, k) -> [(suffix, reason)]                 dimensions the layout cannot pack
    pack(qw), unpack(tensors, spec), decode(tensors, spec, checkpoint_format)
    scales_zeros(tensors, groups, checkpoint_format)      [N, groups] each, zeros unsigned
    sample(tensors, channels, groups, group_width)        a bounded, still-packed slice
    quantization_config(spec, ...)                        the config keys that describe the layout

All of it is tensor and shape code: no file IO.
"""
from awq_harness.awq_ref.formats import awq_gemm, awq_gemv, compressed_tensors, gptq

FORMATS = {m.NAME: m for m in (awq_gemm, awq_gemv, compressed_tensors, gptq)}
AWQ_VERSIONS = (awq_gemm.NAME, awq_gemv.NAME)  # the layouts AutoAWQ's ``version`` names


def get(name: str):
    """The layout module called ``name`` (one of FORMATS)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; known: {sorted(FORMATS)}") from None


def layout(version: str):
    """The layout module for an AWQ ``version`` string (case-insensitive)."""
    if version.lower() not in AWQ_VERSIONS:
        raise ValueError(f"unknown AWQ version {version!r}; known: {sorted(AWQ_VERSIONS)}")
    return FORMATS[version.lower()]

