"""The second text domain (Python's documentation): pinned, split by section, and selectable."""
import hashlib

import pytest

from awq_harness.awq_ref.data import pydoc_corpus
from awq_harness.awq_ref.data.calibration import calibration_blocks
from awq_harness.awq_ref.data.corpus import DOMAINS, calibration_texts, eval_text
from awq_harness.awq_ref.data.tiny import tiny_tokenizer
from awq_harness.awq_ref.errors import DataError


def test_the_splits_are_the_pinned_texts_and_disjoint():
    for split in ("eval", "calib"):
        text = pydoc_corpus.pydoc_split(split)
        assert hashlib.sha256(text.encode()).hexdigest() == pydoc_corpus.SHA256[split]
    assert not set(pydoc_corpus.SPLITS["eval"]) & set(pydoc_corpus.SPLITS["calib"])
    held_out = eval_text("pydoc")
    assert "Python" in held_out and "Elizabeth" not in held_out
    assert not any(p in held_out for p in calibration_texts("pydoc")[:200] if len(p) > 200)


def test_each_domain_has_its_own_held_out_and_calibration_text():
    assert set(DOMAINS) == {"austen", "pydoc"}
    assert eval_text("austen") != eval_text("pydoc")
    tok = tiny_tokenizer()
    a = calibration_blocks(tok, 4, 64, domain="austen")
    b = calibration_blocks(tok, 4, 64, domain="pydoc")
    assert a.shape == b.shape == (4, 64) and not bool((a == b).all())
    assert bool((calibration_blocks(tok, 4, 64, domain="pydoc") == b).all())  # seeded


def test_an_unknown_domain_is_one_line_naming_the_choices():
    with pytest.raises(DataError, match="unknown text domain 'bible'.*austen, pydoc"):
        eval_text("bible")
