"""Packing b-bit codes into int32 words along the last axis, in a given nibble order.

Word j of a row holds the codes at positions 8j .. 8j+7 (for 4 bits). ``order[i]`` names
which of those positions sits in bits [4i, 4i+4) of the word. All layouts in this package
are built from these two functions; each layout module says which axis and which order.
"""
from __future__ import annotations

import torch

NATURAL_ORDER = (0, 1, 2, 3, 4, 5, 6, 7)


def _check_order(order: tuple[int, ...], bits: int) -> None:
    if 32 % bits or len(order) != 32 // bits or sorted(order) != list(range(len(order))):
        raise ValueError(f"order {order} is not a permutation of {32 // bits} slots for {bits}-bit codes")


def pack_last(codes: torch.Tensor, bits: int = 4, order: tuple[int, ...] = NATURAL_ORDER) -> torch.Tensor:
    """[..., L] integer codes in [0, 2^bits) -> [..., L / (32/bits)] int32 words."""
    _check_order(order, bits)
    per_word = 32 // bits
    if codes.shape[-1] % per_word:
        raise ValueError(f"last dim {codes.shape[-1]} is not a multiple of {per_word}")
    c = codes.to(torch.int64)
    if c.numel() and (c.min() < 0 or c.max() >= 2**bits):
        raise ValueError(f"codes outside [0, {2**bits - 1}] cannot be packed without corrupting neighbours")
    c = c.reshape(*c.shape[:-1], -1, per_word)[..., list(order)]
    shifts = torch.arange(per_word, dtype=torch.int64, device=codes.device) * bits
    words = (c << shifts).sum(dim=-1)  # disjoint bit fields: sum == bitwise or
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def unpack_last(words: torch.Tensor, bits: int = 4, order: tuple[int, ...] = NATURAL_ORDER) -> torch.Tensor:
    """Inverse of ``pack_last``: [..., W] int32 -> [..., W * (32/bits)] int32 codes."""
    _check_order(order, bits)
    if words.dtype != torch.int32:
        raise ValueError(f"packed words must be int32, got {words.dtype}")
    per_word = 32 // bits
    shifts = torch.arange(per_word, dtype=torch.int64, device=words.device) * bits
    fields = (words.to(torch.int64)[..., None] >> shifts) & (2**bits - 1)
    inverse = [order.index(p) for p in range(per_word)]
    codes = fields[..., inverse]
    return codes.reshape(*words.shape[:-1], -1).to(torch.int32)
