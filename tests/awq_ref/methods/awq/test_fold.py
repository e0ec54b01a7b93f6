"""Folding AWQ scales leaves the float model's function unchanged, for every family."""
import pytest
import torch

from awq_harness.awq_ref.data.tiny import FAMILIES, tiny_model
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.fold import fold_scales
from awq_harness.awq_ref.model.arch import decoder_layers, scaling_groups
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.awq_ref.methods.awq.run import run_awq

IDS = torch.randint(0, 512, (3, 48), generator=torch.Generator().manual_seed(7))


def wide_scales(k: int, seed: int) -> torch.Tensor:
    """Positive scales spanning about 1e-3 .. 1e3: a hard case for the reparametrisation."""
    return torch.exp(2.5 * torch.randn(k, generator=torch.Generator().manual_seed(seed)))


def _gemma_norm_in_input_dtype(self, x):
    """Gemma's RMSNorm as transformers writes it, (1 + w) x / rms(x), without its cast to float32."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + self.weight)


def float64_throughout(model, monkeypatch):
    """Gemma's norms compute in float32 whatever the model's dtype: patched so float64 stays float64."""
    for module in model.modules():
        if type(module).__name__.startswith("Gemma") and type(module).__name__.endswith("RMSNorm"):
            monkeypatch.setattr(type(module), "forward", _gemma_norm_in_input_dtype)
    return model


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_random_scales_fold_exactly_in_float64(family, monkeypatch):
    model = float64_throughout(tiny_model(family, seed=3).double(), monkeypatch)
    before = model(IDS).logits
    for i, layer in enumerate(decoder_layers(model)):
        for j, group in enumerate(scaling_groups(model, layer)):
            k = layer.get_submodule(group.balance[0]).in_features
            fold_scales(layer, group, wide_scales(k, 10 * i + j).double())
    after = model(IDS).logits
    assert torch.allclose(after, before, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("family", FAMILIES)
@torch.no_grad()
def test_folding_changes_weights_but_not_outputs(family):
    model = tiny_model(family, seed=3)
    layer = decoder_layers(model)[0]
    group = scaling_groups(model, layer)[0]
    w0 = layer.get_submodule(group.balance[0]).weight.clone()
    before = model(IDS).logits
    fold_scales(layer, group, wide_scales(w0.shape[1], 1))
    assert not torch.allclose(layer.get_submodule(group.balance[0]).weight, w0)
    torch.testing.assert_close(model(IDS).logits, before, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_searched_scales_fold_without_changing_the_model(family):
    """The whole driver up to folding (scale_only): float32 outputs within float32 rounding."""
    model = tiny_model(family, seed=4)
    with torch.no_grad():
        before = model(IDS).logits
    result = run_awq(model, IDS, QuantSpec(4, 64), AwqSearchConfig(), mode="scale_only", keep_tensors=True)
    assert any(not torch.allclose(g.scales, torch.ones_like(g.scales)) for g in result.groups)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, before, rtol=1e-5, atol=2e-5)


@torch.no_grad()
def test_gemma_norm_fold_is_one_plus_w_over_s_in_float64():
    """(1 + w') = (1 + w) / s exactly; the fold a tool makes when it treats the norm as w is not it."""
    from awq_harness.awq_ref.model.arch import ScalingGroup

    model = tiny_model("gemma", seed=3).double()
    layer = decoder_layers(model)[0]
    group = scaling_groups(model, layer)[0]
    assert group.norm_offset == 1.0
    w = layer.input_layernorm.weight.clone()
    s = wide_scales(w.numel(), 5).double()
    fold_scales(layer, group, s)
    torch.testing.assert_close(1 + layer.input_layernorm.weight, (1 + w) / s, rtol=1e-11, atol=1e-15)
    as_if_w = ScalingGroup(group.prev, group.balance, group.inspect)  # norm_offset 0: w' = w / s
    layer.input_layernorm.weight.copy_(w)
    fold_scales(layer, as_if_w, s)
    assert not torch.allclose(1 + layer.input_layernorm.weight, (1 + w) / s, rtol=1e-3)
