"""Calibration token blocks, drawn from the calibration split the way AutoAWQ draws them.

AutoAWQ (``awq/utils/calib_data.py``, same as llm-awq) shuffles the rows of its dataset with
a fixed seed, tokenizes each row with the tokenizer's own special tokens, skips empty rows
and rows longer than ``seqlen``, concatenates the rest into one stream, and cuts the stream
into blocks of ``seqlen`` tokens (no attention mask; blocks may cross row boundaries).

One deliberate difference: AutoAWQ stops after ``n_samples`` *rows*, so it usually gets
fewer than ``n_samples`` blocks. We stop once the stream holds ``n_samples`` full *blocks*,
so "16 x 256" always means exactly 16 blocks of 256 tokens.

Rows are the paragraphs of ``corpus.calibration_texts()`` (five Austen novels; Pride and
Prejudice is held out), or of another domain's calibration split (``domain``, e.g. ``pydoc``).
The shuffle uses our own seeded ``torch.Generator``, so the same
seed gives the same blocks on any machine.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.errors import DataError

DEFAULT_SEED = 42  # AutoAWQ shuffles pile-val with seed 42


def shuffled(rows: list[str], seed: int) -> list[str]:
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))
    return [rows[i] for i in order.tolist()]


def token_stream(tokenizer, rows: list[str], seqlen: int, needed: int) -> list[int]:
    """Concatenated token ids of the rows (each at most ``seqlen`` tokens) until ``needed``."""
    stream: list[int] = []
    for row in rows:
        text = row.strip()
        if not text:
            continue
        ids = tokenizer(text)["input_ids"]
        if len(ids) > seqlen:
            continue
        stream += ids
        if len(stream) >= needed:
            break
    return stream


def calibration_blocks(tokenizer, n_samples: int = 128, seqlen: int = 512, seed: int = DEFAULT_SEED,
                       rows: list[str] | None = None, domain: str = "austen") -> torch.Tensor:
    """``[n_samples, seqlen]`` token ids from ``domain``'s calibration split (or the given rows)."""
    if n_samples <= 0 or seqlen <= 1:
        raise DataError(f"need n_samples >= 1 and seqlen >= 2, got {n_samples} x {seqlen}")
    if rows is None:
        from awq_harness.awq_ref.data.corpus import calibration_texts

        rows = calibration_texts(domain)
    needed = n_samples * seqlen
    stream = token_stream(tokenizer, shuffled(rows, seed), seqlen, needed)
    if len(stream) < needed:
        raise DataError(f"the calibration split holds only {len(stream)} usable tokens; "
                        f"{n_samples} x {seqlen} = {needed} were asked for")
    return torch.tensor(stream[:needed], dtype=torch.long).reshape(n_samples, seqlen)
