"""On-disk layouts of quantised linears. One module owns each layout; see its shape table."""
from awq_ref.formats import awq_gemm, awq_gemv, compressed_tensors, gptq

LAYOUTS = {"gemm": awq_gemm, "gemv": awq_gemv}
OTHER_LAYOUTS = {"compressed-tensors": compressed_tensors, "gptq": gptq}  # not AWQ versions


def layout(version: str):
    """The layout module for an AWQ ``version`` string (case-insensitive)."""
    try:
        return LAYOUTS[version.lower()]
    except KeyError:
        raise ValueError(f"unknown AWQ version {version!r}; known: {sorted(LAYOUTS)}") from None
