"""Scale candidates and the grid search."""
import torch
from torch import nn

from awq_harness.awq_ref.methods.awq.scale import candidate_scales, scaled_quantized, search_scale
from awq_harness.awq_ref.methods.awq.stats import activation_mean, weight_mean
from awq_harness.awq_ref.primitives.quant import QuantSpec, pseudo_quantize

SPEC = QuantSpec(4, 32)


def test_candidates_are_normalised_and_alpha_zero_plain_is_identity():
    gen = torch.Generator().manual_seed(0)
    x_mean, w_mean = torch.rand(64, generator=gen) + 0.1, torch.rand(64, generator=gen) + 0.1
    for alpha in (0.0, 0.35, 0.95):
        for duo in (True, False):
            s = candidate_scales(x_mean, w_mean, alpha, duo)
            assert torch.allclose(s.max() * s.min(), torch.tensor(1.0), rtol=1e-5)
    assert torch.allclose(candidate_scales(x_mean, w_mean, 0.0, duo=False), torch.ones(64))
    duo0 = candidate_scales(x_mean, w_mean, 0.0, duo=True)  # 1 / (w_mean + 1e-4), normalised
    assert torch.allclose(duo0 * (w_mean + 1e-4), (duo0 * (w_mean + 1e-4)).mean().expand(64), rtol=1e-5)


def test_statistics():
    x = torch.tensor([[[1.0, -2.0], [-3.0, 4.0]]])
    assert torch.equal(activation_mean(x), torch.tensor([2.0, 3.0]))
    w = torch.tensor([[1.0, -2.0, 4.0, 0.0]])
    assert torch.allclose(weight_mean([w, 2 * w], group_size=2), torch.tensor([0.5, 1.0, 1.0, 0.0]), atol=1e-5)


def test_scaled_quantized_with_unit_scales_is_plain_quantisation():
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(scaled_quantized(w, torch.ones(64), SPEC), pseudo_quantize(w, SPEC))


def test_search_returns_the_grid_minimum_and_beats_no_scaling_on_outliers():
    gen = torch.Generator().manual_seed(2)
    linear = nn.Linear(128, 64, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(64, 128, generator=gen))
    x = torch.randn(512, 128, generator=gen)
    x[:, :4] *= 30  # salient input channels
    master = [linear.weight.detach().clone()]
    choice = search_scale([linear], master, linear, x, {}, activation_mean(x), weight_mean(master, 32),
                          SPEC, n_grid=20, duo=False)
    assert len(choice.losses) == 20 and choice.loss == min(choice.losses)
    assert choice.losses.index(choice.loss) == round(choice.alpha * 20)
    assert choice.alpha > 0 and choice.loss < choice.losses[0]  # alpha 0 (plain) = plain RTN
    assert torch.equal(linear.weight, master[0])  # weights restored after the search
