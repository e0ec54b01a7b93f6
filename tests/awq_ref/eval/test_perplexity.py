"""The evaluator's windowing and its arithmetic, then the real model: FP beats RTN."""
import math

import pytest
import torch
from torch import nn

from awq_harness.awq_ref.eval.evaluate import EvalSettings, eval_tokens, evaluate_float, evaluate_method
from awq_harness.awq_ref.eval.perplexity import make_windows, perplexity
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.primitives.quant import QuantSpec


class UniformLM(nn.Module):
    """Every next token equally likely: perplexity must be the vocabulary size."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


def test_uniform_model_has_perplexity_equal_to_vocab():
    result = perplexity(UniformLM(97), torch.randint(0, 97, (1000,)), seqlen=100, n_windows=7, batch_size=3)
    assert result.windows == 7 and result.tokens == 7 * 99
    assert math.isclose(result.ppl, 97, rel_tol=1e-6)  # token NLLs are float32


def test_windows_are_non_overlapping_from_the_start():
    w = make_windows(torch.arange(1050), 100)
    assert w.shape == (10, 100) and w[3, 0] == 300 and w[-1, -1] == 999
    with pytest.raises(ValueError, match="only 10"):
        make_windows(torch.arange(1050), 100, 11)


def test_batching_does_not_change_the_result():
    model = nn.Module()
    torch.manual_seed(0)
    emb = nn.Embedding(50, 50)
    model.forward = lambda input_ids: type("O", (), {"logits": emb(input_ids)})()
    tokens = torch.randint(0, 50, (900,))
    one = perplexity(model, tokens, seqlen=64, batch_size=1)
    many = perplexity(model, tokens, seqlen=64, batch_size=5)
    assert math.isclose(one.ppl, many.ppl, rel_tol=1e-6)


def test_default_model_rtn_w4_g64_is_worse_than_fp():
    settings = EvalSettings(windows=3, seqlen=512)
    tokens = eval_tokens("default")
    fp = evaluate_float("default", tokens, settings)
    rtn = evaluate_method("default", "rtn", QuantizeRequest(QuantSpec(4, 64)), tokens, settings)
    assert 5 < fp.result.ppl < 60  # a working small LM on Austen prose
    assert rtn.result.ppl > fp.result.ppl * 1.02  # a no-op quantiser would fail here
    assert rtn.result.ppl < fp.result.ppl * 2  # and a broken one here
