"""Unsupported input raises ValueError (never an assert or a crash inside Triton)."""
import pytest
import torch

from awq_harness import kernels
from awq_harness.kernels import awq_dequantize, awq_gemm, awq_gemv, awq_linear
from awq_harness.kernels.gemm import GemmConfig
from awq_harness.kernels.gemv import MAX_ROWS, GemvConfig
from tests.kernels.oracle import Layer, packed, random_weight

LAYER = Layer(k=128, n=32, group_size=64, zero_point=True, seed=0)


@pytest.fixture
def weights(triton_device):
    return {name: v.to(triton_device) for name, v in packed(random_weight(LAYER)).items()}


def _x(rows=2, k=LAYER.k, dtype=torch.float16, device="cpu"):
    return torch.randn(rows, k).to(dtype).to(device)


def _groups(t: dict, count: int) -> dict:
    """Scales and zeros for ``count`` groups over the same K = 128 rows."""
    scales = torch.ones(count, 32, dtype=torch.float16, device=t["scales"].device)
    return {**t, "scales": scales, "qzeros": t["qzeros"][:1].repeat(count, 1)}


BAD_WEIGHTS = {
    "qweight dtype": (lambda t: {**t, "qweight": t["qweight"].to(torch.int64)}, "qweight dtype"),
    "qweight 3-D": (lambda t: {**t, "qweight": t["qweight"][None]}, "2-D"),
    "scales columns": (lambda t: {**t, "scales": t["scales"][:, :16]}, "columns"),
    "qzeros shape": (lambda t: {**t, "qzeros": t["qzeros"][:, :2]}, "qzeros shape"),
    "scales int": (lambda t: {**t, "scales": t["scales"].to(torch.int32)}, "scales dtype"),
    "groups do not divide K": (lambda t: _groups(t, 3), "exact multiple"),
    "group size 8": (lambda t: _groups(t, 16), "multiple of 16"),
    "empty qweight": (lambda t: {**t, "qweight": t["qweight"][:0]}, "empty|exact multiple"),
}


@pytest.mark.parametrize("kernel", [awq_dequantize, awq_gemm, awq_gemv, awq_linear])
@pytest.mark.parametrize("bad", list(BAD_WEIGHTS))
def test_bad_weights_raise_value_error(kernel, bad, weights, triton_device):
    mutate, message = BAD_WEIGHTS[bad]
    t = mutate(weights)
    args = (t["qweight"], t["qzeros"], t["scales"])
    with pytest.raises(ValueError, match=message):
        kernel(*args) if kernel is awq_dequantize else kernel(_x(device=triton_device), *args)


BAD_X = {
    "wrong K": (_x(k=64), "expects K"),
    "int activations": (torch.ones(2, 128, dtype=torch.int32), "x dtype"),
    "1-D activations": (torch.ones(128, dtype=torch.float16), "2-D"),
    "no rows": (torch.ones(0, 128, dtype=torch.float16), "no rows"),
}


@pytest.mark.parametrize("kernel", [awq_gemm, awq_gemv])
@pytest.mark.parametrize("bad", list(BAD_X))
def test_bad_activations_raise_value_error(kernel, bad, weights, triton_device):
    x, message = BAD_X[bad]
    with pytest.raises(ValueError, match=message):
        kernel(x.to(triton_device), weights["qweight"], weights["qzeros"], weights["scales"])


@pytest.mark.parametrize("config,message", [
    (GemmConfig(8, 32, 32, 1), "block_m"),  # below the tl.dot minimum
    (GemmConfig(16, 24, 32, 1), "block_n"),  # not a power of two
    (GemmConfig(16, 32, 128, 1), "divide the group size"),  # straddles two groups of 64
    (GemmConfig(16, 32, 32, 0), "split_k"),
])
def test_bad_gemm_config_raises_value_error(config, message, weights, triton_device):
    with pytest.raises(ValueError, match=message):
        awq_gemm(_x(device=triton_device), weights["qweight"], weights["qzeros"], weights["scales"], config)


@pytest.mark.parametrize("config,message", [
    (GemvConfig(8, 32, 1), "block_n"), (GemvConfig(32, 48, 1), "block_k"), (GemvConfig(32, 32, -1), "split_k"),
])
def test_bad_gemv_config_raises_value_error(config, message, weights, triton_device):
    with pytest.raises(ValueError, match=message):
        awq_gemv(_x(device=triton_device), weights["qweight"], weights["qzeros"], weights["scales"], config)


def test_gemv_rejects_large_batches(weights, triton_device):
    with pytest.raises(ValueError, match="at most"):
        awq_gemv(_x(MAX_ROWS + 1, device=triton_device), weights["qweight"], weights["qzeros"], weights["scales"])


def test_dequantize_rejects_bf16_output(weights):
    with pytest.raises(ValueError, match="float16 or float32"):
        awq_dequantize(weights["qweight"], weights["qzeros"], weights["scales"], torch.bfloat16)


def test_unknown_path_raises_value_error(weights, triton_device):
    with pytest.raises(ValueError, match="unknown path"):
        awq_linear(_x(device=triton_device), weights["qweight"], weights["qzeros"], weights["scales"], path="fast")


def test_cpu_without_interpreter_raises_value_error(monkeypatch):
    monkeypatch.setattr(kernels.runtime, "INTERPRETED", False)
    t = packed(random_weight(LAYER))
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        awq_gemm(_x(), t["qweight"], t["qzeros"], t["scales"])


def test_poisoning_is_on_for_kernel_tests(weights):
    assert torch.isnan(kernels.runtime.empty((2,), torch.float32, torch.device("cpu"))).all()


def test_outputs_beyond_int32_offsets_raise_value_error(weights, triton_device):
    rows = (2**31) // LAYER.n + 1  # M * N just past int32: rejected before anything is allocated
    x = torch.empty(1, LAYER.k, dtype=torch.float16, device=triton_device).expand(rows, LAYER.k)
    with pytest.raises(ValueError, match="int32 offsets"):
        awq_gemm(x, weights["qweight"], weights["qzeros"], weights["scales"])
