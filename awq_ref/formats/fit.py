"""Does a set of stored tensor shapes have exactly a layout's shapes? Shape code only.

``expected_shapes`` is the layout's own table (``<layout>.shapes``) plus its optional tensors;
``fits`` reads a layer's dimensions from its shapes (``<layout>.dims``) and checks every tensor
against that table, so a file can be told apart from one in a similar layout.
"""
from __future__ import annotations

from awq_harness.awq_ref.formats.dims import CODES_PER_WORD, Dims, Shapes


def suffixes(fmt) -> set[str]:
    """Every tensor suffix a layer in this layout may have."""
    return set(fmt.DTYPES) | {"bias"}


def expected_shapes(fmt, dims: Dims, group_width: int) -> dict[str, tuple[int, ...]]:
    """Raises ValueError when the layout has no shapes for these dimensions (a layout that packs
    several code widths gets the width the dimensions imply)."""
    width = {"bits": round(dims.bits)} if len(getattr(fmt, "PACKED_BITS", (4,))) > 1 else {}
    return dict(fmt.shapes(dims.k, dims.n, group_width, **width)) | fmt.optional_shapes(dims.k, dims.n)


def fits(fmt, shapes: Shapes, values: dict, group_width: int | None) -> bool:
    """Do the present tensors have exactly this layout's shapes (for some plausible group width)?"""
    dims = fmt.dims(shapes, values)
    gw = (dims.group_width() if dims else None) or group_width
    if dims is None or not gw or dims.k % gw or dims.pack != CODES_PER_WORD or not set(shapes) <= suffixes(fmt):
        return False
    try:
        want = expected_shapes(fmt, dims, gw)
    except ValueError:
        return False
    return all(tuple(want.get(s, ())) == shape for s, shape in shapes.items() if s in want)
