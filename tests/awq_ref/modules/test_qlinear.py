"""The quantised linear holds exactly the packed tensors of its layout and computes with (q - z) * s."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from awq_harness.awq_ref.modules import qlinear
from awq_harness.awq_ref.modules.qlinear import AwqLinear, kernel_backend
from awq_harness.awq_ref.modules.swap import excluded, replace_linears
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize


@st.composite
def linears(draw):
    group = draw(st.sampled_from([32, 64, 128, -1]))  # GEMV stores group sizes 32, 64 and >= 128
    k = draw(st.integers(1, 4)) * (128 if group == -1 else group)
    n = draw(st.integers(1, 6)) * 8
    spec = QuantSpec(4, group, draw(st.booleans()))
    seed = draw(st.integers(0, 2**16))
    return spec, n, k, draw(st.sampled_from(["gemm", "gemv"])), draw(st.booleans()), seed


@settings(max_examples=30, deadline=None)
@given(linears())
def test_from_quantized_round_trips_and_computes_with_the_dequantised_weight(case):
    spec, n, k, version, with_bias, seed = case
    g = torch.Generator().manual_seed(seed)
    w, x = torch.randn(n, k, generator=g), torch.randn(3, k, generator=g)
    bias = torch.randn(n, generator=g) if with_bias else None
    qw = quantize(w, spec, scale_dtype=torch.float16)  # the scales every AWQ layout stores
    module = AwqLinear.from_quantized(qw, version, bias)
    back = module.quantized_weight()
    assert torch.equal(back.q, qw.q) and torch.equal(back.zeros, qw.zeros)
    assert torch.equal(back.scales, qw.scales)
    w_hat = qw.dequantize(torch.float32)
    assert torch.equal(module.dequantized_weight(), w_hat)
    want = nn.functional.linear(x, w_hat, None if bias is None else bias.half().float())
    with kernel_backend("torch"):
        assert torch.equal(module(x), want)


def test_replace_linears_swaps_or_fake_quantises_in_place():
    spec = QuantSpec(4, 32, True)
    layer = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 8, bias=False))
    float_weight = layer[0].weight.detach().clone()
    fake = {"0": quantize(float_weight, spec, scale_dtype=torch.float16)}
    replace_linears(layer, fake, None)
    assert isinstance(layer[0], nn.Linear) and torch.equal(layer[0].weight, fake["0"].dequantize(torch.float32))
    replace_linears(layer, {"1": quantize(layer[1].weight.detach(), spec)}, "gemv")
    assert isinstance(layer[1], AwqLinear) and layer[1].version == "gemv" and layer[1].bias is None


def test_modules_to_not_convert_match_by_substring_as_the_loaders_do():
    assert excluded("model.layers.3.mlp.down_proj", ["down_proj"])
    assert excluded("model.layers.3.mlp.down_proj", ["layers.3."])
    assert not excluded("model.layers.13.mlp.down_proj", ["layers.3."])
    assert not excluded("model.layers.3.mlp.down_proj", None)


def test_kernel_backend_blocks_nest_restore_and_refuse_unknown_names():
    assert qlinear._backend() == qlinear.KERNELS
    with kernel_backend("torch"):
        with pytest.raises(RuntimeError):
            with kernel_backend("triton"):
                assert qlinear._backend() == "triton"
                raise RuntimeError
        assert qlinear._backend() == "torch"
    assert qlinear._backend() == qlinear.KERNELS
    with pytest.raises(ValueError, match="kernel backend 'cuda'"):
        with kernel_backend("cuda"):
            pass
