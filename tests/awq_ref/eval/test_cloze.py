"""The last-word cloze task: how passages are built, and lm-eval's accuracy against our own count."""
import pytest
import torch

pytest.importorskip("lm_eval")

from awq_harness.awq_ref.data.models import load_model, load_tokenizer  # noqa: E402
from awq_harness.awq_ref.data.tiny_lm import tiny_lm_dir  # noqa: E402
from awq_harness.awq_ref.eval.lm_eval_task import cloze_passages, lm_eval_cloze  # noqa: E402
from awq_harness.awq_ref.eval.lm_eval_task.cloze import MAX_WORDS, MIN_WORDS, passage  # noqa: E402


def test_a_passage_ends_before_its_last_word_which_the_context_already_holds():
    words = ["the", "cat"] + ["sat"] * (MIN_WORDS - 4) + ["near", "the", "cat."]
    p = passage(" ".join(words))
    assert p == {"context": " ".join(words[:-1]), "target": " cat"}
    assert passage(" ".join(words[:-1] + ["dog."])) is None  # the target must occur earlier
    assert passage("the cat sat near the cat.") is None  # too short
    assert passage(" ".join(["cat"] * (MAX_WORDS + 1))) is None  # too long


@pytest.mark.parametrize("domain", ["austen", "pydoc"])
def test_passages_come_from_the_held_out_text_in_order(domain):
    from awq_harness.awq_ref.data.corpus import eval_text

    passages = cloze_passages(domain)
    assert len(passages) >= 50
    text = eval_text(domain).replace("\n", " ")
    starts = [text.find(p["context"][:60]) for p in passages[:20]]
    assert all(s >= 0 for s in starts) and starts == sorted(starts)
    assert all(p["target"][1:] in p["context"] for p in passages)


def greedy_hits(model, tokenizer, passages) -> int:
    """Our own count: a passage is right when every target token is the argmax given its prefix."""
    hits = 0
    for p in passages:
        whole = tokenizer(p["context"] + p["target"])["input_ids"]
        n_ctx = len(tokenizer(p["context"])["input_ids"])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([whole])).logits[0]
        hits += bool((logits[n_ctx - 1 : len(whole) - 1].argmax(-1) == torch.tensor(whole[n_ctx:])).all())
    return hits


def test_lm_eval_accuracy_is_the_share_of_greedy_hits():
    folder = tiny_lm_dir()
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    passages = cloze_passages("austen", 12)
    result = lm_eval_cloze(model, tokenizer, passages, max_length=512)
    assert result.passages == 12
    assert result.accuracy == pytest.approx(greedy_hits(model, tokenizer, passages) / 12)
    assert result.perplexity > 1
