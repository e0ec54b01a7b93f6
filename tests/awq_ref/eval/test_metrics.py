"""KL divergence, top-1 agreement and the bootstrap intervals, on models whose answers are known."""
import math

import pytest
import torch
from torch import nn

from awq_harness.awq_ref.eval import metrics
from awq_harness.awq_ref.eval.metrics import (
    TokenScores,
    intervals,
    mean_interval,
    paired_difference,
    point_estimates,
    quantile,
)
from awq_harness.awq_ref.eval.perplexity import make_windows, perplexity
from awq_harness.awq_ref.eval.reference import build_reference, cached_reference, score_windows

VOCAB = 37


class FixedLM(nn.Module):
    """Every position gets the same logits vector: next-token distribution softmax(bias)."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.bias = bias

    def forward(self, input_ids):
        logits = self.bias.expand(*input_ids.shape, VOCAB).clone()
        return type("Out", (), {"logits": logits})()


class EmbedLM(nn.Module):
    def __init__(self, seed: int, noise: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = nn.Embedding(VOCAB, VOCAB)
        with torch.no_grad():
            self.emb.weight.copy_(torch.randn(VOCAB, VOCAB, generator=g) * 2)
            self.emb.weight.add_(noise * torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(seed)))

    def forward(self, input_ids):
        return type("Out", (), {"logits": self.emb(input_ids)})()


def windows(n=6, t=20):
    return make_windows(torch.randint(0, VOCAB, (n * t,), generator=torch.Generator().manual_seed(1)), t)


def test_kl_from_a_uniform_reference_matches_the_closed_form(tmp_path):
    bias = torch.linspace(-2, 2, VOCAB)
    ref = build_reference(FixedLM(torch.zeros(VOCAB)), windows(), tmp_path / "ref.safetensors")
    scores, _ = score_windows(FixedLM(bias), windows(), ref)
    log_q = torch.log_softmax(bias.double(), dim=0)
    expected = -math.log(VOCAB) - float(log_q.mean())  # KL(uniform || q)
    assert torch.allclose(scores.kld.double(), torch.full_like(scores.kld.double(), expected), rtol=1e-3)
    assert scores.top1.float().mean() == 0  # uniform's argmax is token 0, q's is the last one


def test_a_model_against_its_own_reference_sits_on_the_float16_floor(tmp_path):
    model, w = EmbedLM(0), windows()
    ref = build_reference(model, w, tmp_path / "ref.safetensors")
    scores, _ = score_windows(model, w, ref)
    assert bool(scores.top1.all())
    assert float(scores.kld.abs().max()) < 1e-3
    assert torch.allclose(scores.kld, ref.float_scores().kld)


def test_kl_matches_a_float64_computation_and_grows_with_the_perturbation(tmp_path):
    base, w = EmbedLM(0), windows()
    ref = build_reference(base, w, tmp_path / "ref.safetensors")
    means = []
    for noise in (0.1, 0.5, 2.0):
        other = EmbedLM(3, noise)
        scores, _ = score_windows(other, w, ref)
        with torch.no_grad():
            p = torch.log_softmax(base(w).logits[:, :-1].double(), -1)
            q = torch.log_softmax(other(w).logits[:, :-1].double(), -1)
        exact = (p.exp() * (p - q)).sum(-1)
        assert torch.allclose(scores.kld.double(), exact, atol=2e-3, rtol=1e-2)
        means.append(point_estimates(scores)["kld_mean"])
    assert means == sorted(means) and means[0] > 0


@pytest.mark.parametrize("tokens", [1, 31, 32, 33, 100])
def test_kl_and_top1_a_few_tokens_at_a_time_gives_the_whole_window_bits(tokens):
    """The chunked pass must give the bits of the one-shot formula, so stored rows stay valid."""
    from awq_harness.awq_ref.eval.reference import kl_and_top1

    g = torch.Generator().manual_seed(tokens)
    logits = torch.randn(2, tokens + 1, 300, generator=g) * 3
    ref_logp = torch.log_softmax(torch.randn(2, tokens, 300, generator=g) * 3, -1).half()
    ref_top1 = torch.randint(0, 300, (2, tokens), generator=g)
    logq = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    logp = torch.log_softmax(ref_logp.float(), dim=-1)
    kld, agree = kl_and_top1(logits, ref_logp, ref_top1)
    assert torch.equal(kld, (logp.exp() * (logp - logq)).sum(dim=-1))
    assert torch.equal(agree, logq.argmax(dim=-1) == ref_top1) and kld.shape == (2, tokens)


def test_the_scoring_pass_gives_the_perplexity_of_the_plain_evaluator():
    model, tokens = EmbedLM(0), torch.randint(0, VOCAB, (400,), generator=torch.Generator().manual_seed(2))
    w = make_windows(tokens, 50)
    scores, total = score_windows(model, w, None, batch_size=3)
    assert total == perplexity(model, tokens, 50, batch_size=3).nll_sum
    assert scores.kld is None and scores.nll.shape == (8,)


def test_the_reference_is_built_once_and_keyed_by_the_windows(tmp_path, monkeypatch):
    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path))
    (tmp_path / "m").mkdir()
    loads = []

    def load():
        loads.append(1)
        return EmbedLM(0)

    _, built = cached_reference(tmp_path / "m", windows(), torch.float32, load)
    _, again = cached_reference(tmp_path / "m", windows(), torch.float32, load)
    _, other = cached_reference(tmp_path / "m", windows(5), torch.float32, load)
    assert (built, again, other) == (True, False, True) and len(loads) == 2


def _scores(seed: int, n: int = 12, t: int = 30) -> TokenScores:
    g = torch.Generator().manual_seed(seed)
    kld = torch.rand(n, t, generator=g) ** 3
    return TokenScores(torch.rand(n, generator=g, dtype=torch.float64) * t * 3, t, kld,
                       torch.rand(n, t, generator=g) < 0.8)


def test_intervals_are_seeded_and_bracket_the_point_estimates():
    s = _scores(0)
    first, second = intervals(s), intervals(s)
    assert first == second
    assert intervals(s, seed=1) != first
    point = point_estimates(s) | {"ppl": math.exp(float(s.nll.sum()) / (s.windows * s.predicted))}
    for name, (low, high) in first.items():
        assert low <= point[name] <= high, name
    assert first["kld_p999"][1] <= first["kld_max"][1]


def test_quantile_is_numpys_linear_rule():
    values = torch.rand(3, 1001, generator=torch.Generator().manual_seed(4))
    for q in (0.0, 0.5, 0.99, 0.999, 1.0):
        assert torch.allclose(quantile(values, q), torch.quantile(values, q, dim=-1))


def test_a_paired_difference_of_a_row_with_itself_is_exactly_zero_and_a_shift_is_found():
    s = _scores(0)
    same = paired_difference(s, s, "kld_mean")
    assert same.value == 0 and same.ci == [0.0, 0.0]
    worse = TokenScores(s.nll, s.predicted, s.kld + 0.1, s.top1)
    diff = paired_difference(worse, s, "kld_mean")
    assert diff.ci[0] > 0.09 and diff.ci[1] < 0.11  # the shift, with no window-to-window noise
    with pytest.raises(ValueError, match="same windows"):
        paired_difference(_scores(0, n=5), s, "nll")


def test_resample_draws_depend_only_on_the_seed_and_window_count():
    assert torch.equal(metrics.resample_indices(9), metrics.resample_indices(9))
    assert metrics.resample_indices(9).shape == (metrics.RESAMPLES, 9)


def test_the_mean_interval_of_independent_items_is_seeded_brackets_the_mean_and_narrows():
    g = torch.Generator().manual_seed(5)
    few, many = (torch.rand(n, generator=g) < 0.3 for n in (20, 2000))
    lo, hi = mean_interval(few)
    assert mean_interval(few) == [lo, hi] and lo <= float(few.double().mean()) <= hi
    lo2, hi2 = mean_interval(many)
    assert lo2 <= float(many.double().mean()) <= hi2 and hi2 - lo2 < (hi - lo) / 3
    assert mean_interval(torch.ones(7)) == [1.0, 1.0]


def test_statistics_names_the_point_estimates_in_order():
    from awq_harness.awq_ref.eval.metrics import STATISTICS

    assert tuple(point_estimates(_scores(0))) == STATISTICS
