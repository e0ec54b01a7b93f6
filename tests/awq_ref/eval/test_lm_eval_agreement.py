"""Our evaluator and lm-eval agree where their definitions coincide (see lm_eval_task.runner).

Each document here fits one lm-eval window, so lm-eval's rolling log-likelihood of a
document is our window NLL of [prefix] + tokens, negated; the metrics then follow from the
sums and lm-eval's word and byte counts.

Tolerance: both run the same float32 forward; they differ only in how the float32
log-softmax over the 49152-token vocabulary is summed. lm-eval takes ``log_softmax`` over
[T, V] rows (per-token error ~1e-5 nats against float64); ``perplexity.window_nll`` calls
``cross_entropy`` on the [B, V, T] layout, whose float32 reduction is coarser (up to ~2e-4
nats per token measured here), about 3e-5 relative on a document. Hence rel 1e-4 per
document and 5e-4 on the derived perplexities; the metric formulas themselves are exact.
"""
import math
import re

import pytest
import torch

pytest.importorskip("lm_eval")

from awq_harness.awq_ref.data.models import load_model, load_tokenizer  # noqa: E402
from awq_harness.awq_ref.eval.lm_eval_task import lm_eval_perplexity  # noqa: E402
from awq_harness.awq_ref.eval.perplexity import tokenize_text, window_nll  # noqa: E402

MAX_LENGTH = 128


def short_documents(tokenizer, n: int) -> list[str]:
    """Paragraphs of the held-out book that fit one window (40 .. MAX_LENGTH - 1 tokens)."""
    from awq_harness.awq_ref.data.corpus import eval_text

    docs = []
    for para in eval_text().split("\n\n"):
        text = para.replace("\n", " ").strip()
        if 40 <= tokenize_text(tokenizer, text).numel() < MAX_LENGTH:
            docs.append(text)
        if len(docs) == n:
            return docs
    raise AssertionError("not enough paragraphs")


@pytest.fixture(scope="module")
def setup():
    tok = load_tokenizer("default")
    model = load_model("default", torch.float32)
    docs = short_documents(tok, 4)
    return model, tok, docs, lm_eval_perplexity(model, tok, docs, max_length=MAX_LENGTH)


def own_loglikelihoods(model, tok, docs):
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    out = []
    for doc in docs:
        window = torch.cat([torch.tensor([prefix]), tokenize_text(tok, doc)])[None]
        out.append(-float(window_nll(model, window)[0]))
    return out


def test_per_document_loglikelihoods_agree(setup):
    model, tok, docs, result = setup
    ours = own_loglikelihoods(model, tok, docs)
    assert result.documents == len(docs) == len(result.loglikelihoods)
    for theirs, mine in zip(result.loglikelihoods, ours):
        assert mine == pytest.approx(theirs, rel=1e-4)


def converted(total_ll: float, docs: list[str]) -> dict:
    words = sum(len(re.split(r"\s+", d)) for d in docs)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    return {"word_perplexity": math.exp(-total_ll / words), "byte_perplexity": math.exp(-total_ll / n_bytes),
            "bits_per_byte": -total_ll / n_bytes / math.log(2)}


def test_lm_eval_metrics_are_the_documented_formulas(setup):
    _, _, docs, result = setup
    for name, value in converted(sum(result.loglikelihoods), docs).items():
        assert getattr(result, name) == pytest.approx(value, rel=1e-9), name


def test_metrics_agree_after_converting_to_their_units(setup):
    model, tok, docs, result = setup
    for name, value in converted(sum(own_loglikelihoods(model, tok, docs)), docs).items():
        assert getattr(result, name) == pytest.approx(value, rel=5e-4), name
