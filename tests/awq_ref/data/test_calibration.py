"""Calibration blocks: AutoAWQ-style concatenation, exact shape, seeded and reproducible."""
import pytest
import torch

from awq_harness.awq_ref.data.calibration import calibration_blocks, shuffled
from awq_harness.awq_ref.errors import DataError


class WordTokenizer:
    """One id per word: enough to check the block logic without a real tokenizer."""

    def __call__(self, text):
        return {"input_ids": [len(w) for w in text.split()]}


ROWS = [" ".join(["w" * (i % 7 + 1)] * (i % 5 + 1)) for i in range(200)] + ["", "   "]


def test_blocks_have_the_asked_shape_and_come_from_the_rows():
    blocks = calibration_blocks(WordTokenizer(), n_samples=6, seqlen=16, rows=ROWS)
    assert blocks.shape == (6, 16) and blocks.dtype == torch.long
    assert set(blocks.flatten().tolist()) <= set(range(1, 8))


def test_same_seed_same_blocks_other_seed_other_blocks():
    a = calibration_blocks(WordTokenizer(), 6, 16, seed=1, rows=ROWS)
    assert torch.equal(a, calibration_blocks(WordTokenizer(), 6, 16, seed=1, rows=ROWS))
    assert not torch.equal(a, calibration_blocks(WordTokenizer(), 6, 16, seed=2, rows=ROWS))


def test_rows_longer_than_seqlen_are_skipped_not_truncated():
    rows = ["a " * 50, "bb cc"] * 20
    blocks = calibration_blocks(WordTokenizer(), 2, 8, rows=rows)
    assert set(blocks.flatten().tolist()) == {2}


def test_blocks_concatenate_rows_in_shuffled_order():
    rows = [f"{'x' * (i + 1)}" for i in range(30)]
    blocks = calibration_blocks(WordTokenizer(), 3, 4, seed=5, rows=rows)
    expected = [len(r) for r in shuffled(rows, 5)][:12]
    assert blocks.flatten().tolist() == expected


def test_too_little_text_is_a_clear_error():
    with pytest.raises(DataError, match="usable tokens"):
        calibration_blocks(WordTokenizer(), 100, 64, rows=ROWS)


def test_real_split_with_the_default_tokenizer_is_reproducible():
    from awq_harness.awq_ref.data.models import load_tokenizer

    tok = load_tokenizer("default")
    a = calibration_blocks(tok, 4, 64)
    assert a.shape == (4, 64)
    assert torch.equal(a, calibration_blocks(tok, 4, 64))
