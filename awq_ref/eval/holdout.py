"""Selection and validation windows: two disjoint sets of windows from the held-out split.

A plan chosen and scored on the same windows overfits them (on SmolLM2 a plan recovering
52% of the gap on its own 2 x 256 tokens recovered 14-43% on other windows). So the plan is
chosen on the *selection* windows and reported on the *validation* windows:

    held-out text (Pride and Prejudice), tokenized once without special tokens
    selection:  the first ``n_select`` windows of ``seqlen`` tokens  (tokens [0, S))
    validation: the next ``n_validate`` windows of ``val_seqlen`` tokens, starting at token S

No token is in both. ``awq-harness eval`` scores the first windows of the same text, so its
numbers overlap the selection windows, not the validation ones (for small selections).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from awq_harness.awq_ref.eval.perplexity import make_windows


@dataclass(frozen=True)
class Windows:
    ids: torch.Tensor     # [n, seqlen] token ids
    first_token: int      # offset into the held-out token stream

    def describe(self) -> dict:
        n, seqlen = self.ids.shape
        return {"text": "held-out split (Pride and Prejudice)", "first_token": self.first_token,
                "windows": n, "seqlen": seqlen, "last_token": self.first_token + n * seqlen}


def selection_and_validation(tokens: torch.Tensor, seqlen: int, n_select: int, val_seqlen: int,
                             n_validate: int) -> tuple[Windows, Windows]:
    """Raises ValueError when the text is too short for both sets."""
    selection = make_windows(tokens, seqlen, n_select)
    start = selection.numel()
    return Windows(selection, 0), Windows(make_windows(tokens[start:], val_seqlen, n_validate), start)
