"""awq_linear picks a kernel by batch size and matches awq_ref on every path; AwqLinear
uses it only when asked (AWQ_HARNESS_KERNELS) or on CUDA, and falls back to the reference."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import awq_harness.awq_ref.modules.qlinear as qlinear
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from awq_harness.kernels import awq_linear, choose_path, dispatch
from tests.kernels.oracle import Layer, assert_matches_reference, packed, random_activations, random_weight
from tests.kernels.strategies import EXAMPLES, X_DTYPES, layers


def test_choose_path_thresholds():
    assert [choose_path(m) for m in (1, dispatch.GEMV_MAX_ROWS)] == ["gemv", "gemv"]
    assert choose_path(dispatch.GEMV_MAX_ROWS + 1) == "gemm"
    assert choose_path(dispatch.DEQUANT_MIN_ROWS - 1) == "gemm"
    assert choose_path(dispatch.DEQUANT_MIN_ROWS) == "dequant+matmul"


@settings(max_examples=EXAMPLES["awq_linear"])
@given(layer=layers(max_k=128, max_n=48), path=st.sampled_from(dispatch.PATHS),
       lead=st.sampled_from([(1,), (3,), (2, 5)]), dtype=st.sampled_from(X_DTYPES), with_bias=st.booleans())
def test_awq_linear_matches_reference(layer, path, lead, dtype, with_bias, triton_device):
    qw = random_weight(layer)
    t = {name: v.to(triton_device) for name, v in packed(qw).items()}
    rows = int(torch.tensor(lead).prod())
    x = random_activations(rows, layer.k, dtype, layer.seed).reshape(*lead, layer.k)
    bias = (torch.randn(layer.n) * 0.1).to(dtype) if with_bias else None
    y = awq_linear(x.to(triton_device), t["qweight"], t["qzeros"], t["scales"],
                   None if bias is None else bias.to(triton_device), path=path)
    assert y.shape == (*lead, layer.n)
    assert_matches_reference(y.reshape(rows, layer.n).cpu(), x.reshape(rows, layer.k), qw, path, bias)


def test_awq_linear_with_no_rows_returns_empty(triton_device):
    t = {k: v.to(triton_device) for k, v in packed(random_weight(Layer(32, 16, 32, True, seed=1))).items()}
    x = torch.empty(0, 32, dtype=torch.float16, device=triton_device)
    y = awq_linear(x, t["qweight"], t["qzeros"], t["scales"])
    assert y.shape == (0, 16)


def _module(version: str = "gemm", group_size: int = 64) -> AwqLinear:
    gen = torch.Generator().manual_seed(3)
    qw = quantize(torch.randn(48, 128, generator=gen), QuantSpec(4, group_size, True), scale_dtype=torch.float16)
    return AwqLinear.from_quantized(qw, version, bias=torch.randn(48, generator=gen) * 0.1)


@pytest.mark.parametrize("rows", [1, 9])
def test_awq_linear_module_uses_kernels_when_asked(rows, monkeypatch, triton_device):
    module = _module().to(triton_device)
    x = random_activations(rows, 128, torch.float16, 5).to(triton_device)
    monkeypatch.setattr(qlinear, "KERNELS", "torch")
    reference = module(x)
    calls = []
    monkeypatch.setattr("awq_harness.kernels.awq_linear", lambda *a, **k: calls.append(1) or awq_linear(*a, **k))
    monkeypatch.setattr(qlinear, "KERNELS", "triton")
    through_kernels = module(x)
    assert calls, "AwqLinear did not dispatch to kernels.awq_linear"
    bias = module.bias.float()
    qw, x, bias = cpu_weight(module), x.cpu(), bias.cpu()
    assert_matches_reference(through_kernels.cpu(), x, qw, choose_path(rows), bias)
    assert_matches_reference(reference.cpu(), x, qw, "dequant+matmul", bias)


def cpu_weight(module: AwqLinear):
    qw = module.quantized_weight()
    return type(qw)(q=qw.q.cpu(), scales=qw.scales.cpu(), zeros=qw.zeros.cpu(), spec=qw.spec)


@pytest.mark.parametrize("switch,version,expect_kernels", [
    ("auto", "gemm", False),  # "auto": kernels for CUDA input only (see below)
    ("torch", "gemm", False),
    ("torch", "gemv", False),
    ("triton", "gemv", True),  # the GEMV layout's own kernel (kernels.gemv_layout)
    ("triton", "gemm", True),
])
def test_awq_linear_module_switch(switch, version, expect_kernels, monkeypatch, triton_device):
    module = _module(version).to(triton_device)
    monkeypatch.setattr(qlinear, "KERNELS", switch)
    calls = []
    monkeypatch.setattr("awq_harness.kernels.awq_linear", lambda *a, **k: calls.append(1) or awq_linear(*a, **k))
    module(random_activations(2, 128, torch.float16, 6).to(triton_device))
    on_gpu_by_default = switch == "auto" and triton_device == "cuda"
    assert bool(calls) == (expect_kernels or on_gpu_by_default)


def test_awq_linear_module_rejects_unknown_switch(monkeypatch):
    monkeypatch.setattr(qlinear, "KERNELS", "cuda-please")
    with pytest.raises(ValueError, match="AWQ_HARNESS_KERNELS"):
        _module()(torch.randn(1, 128))


def test_kernel_backend_block_overrides_the_switch_and_ends_with_the_block(monkeypatch, triton_device):
    module = _module().to(triton_device)
    x = random_activations(2, 128, torch.float16, 8).to(triton_device)
    monkeypatch.setattr(qlinear, "KERNELS", "torch")
    calls = []
    monkeypatch.setattr("awq_harness.kernels.awq_linear", lambda *a, **k: calls.append(1) or awq_linear(*a, **k))
    with qlinear.kernel_backend("triton"):
        with qlinear.kernel_backend("torch"):
            module(x)
        assert not calls, "the inner block asked for the reference"
        module(x)
    assert len(calls) == 1, "the outer block asked for the kernels"
    module(x)
    assert len(calls) == 1 and qlinear.KERNELS == "torch"


def test_kernel_backend_rejects_unknown_mode():
    with pytest.raises(ValueError, match="kernel backend 'cuda-please'"):
        with qlinear.kernel_backend("cuda-please"):
            pass


def test_tiny_model_logits_match_through_kernels(monkeypatch, triton_device):
    """A quantised tiny Llama gives the same logits through the kernels as through awq_ref."""
    from awq_harness.awq_ref.data.tiny import tiny_model
    from awq_harness.awq_ref.methods.registry import QuantizeRequest
    from awq_harness.awq_ref.pipeline.quantize import quantize_model

    model = tiny_model("llama", seed=0, hidden=64, intermediate=128, layers=1)
    quantize_model(model, "rtn", QuantizeRequest(QuantSpec(4, 32, True), "gemm"))
    model = model.to(triton_device)
    ids = torch.randint(0, 512, (1, 6), generator=torch.Generator().manual_seed(0)).to(triton_device)
    monkeypatch.setattr(qlinear, "KERNELS", "torch")
    with torch.no_grad():
        reference = model(ids).logits
    monkeypatch.setattr(qlinear, "KERNELS", "triton")
    with torch.no_grad():
        through_kernels = model(ids).logits
    err = ((through_kernels - reference).abs().max() / reference.abs().max()).item()
    assert err < 1e-5, f"logits differ by {err:.3g} of their range (fp32 model)"


def test_awq_linear_module_falls_back_for_unsupported_group_size(monkeypatch, triton_device):
    """Group size 8 is valid AWQ but below the kernels' 16-row K blocks: the reference serves it."""
    module = _module(group_size=8).to(triton_device)
    monkeypatch.setattr(qlinear, "KERNELS", "triton")
    calls = []
    monkeypatch.setattr("awq_harness.kernels.awq_linear", lambda *a, **k: calls.append(1) or awq_linear(*a, **k))
    y = module(random_activations(2, 128, torch.float16, 7).to(triton_device))
    assert not calls and y.shape == (2, 48)
