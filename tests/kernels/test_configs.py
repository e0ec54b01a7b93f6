"""The launch configurations a GPU will pick (split-K on, wider tiles) are valid for every
benchmark shape, and compute the right thing when run here on small layers."""
import pytest
import torch

from awq_harness.kernels import checks, gemm, gemv, runtime
from awq_harness.kernels.bench.shapes import bench_cases
from tests.kernels.oracle import Layer, assert_matches_reference, layer_shape, packed, random_activations, random_weight


def gpu_config(module, m: int, layer: checks.LayerShape, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(runtime, "INTERPRETED", False)
        return module.default_config(m, layer)


@pytest.mark.parametrize("module", [gemm, gemv], ids=["gemm", "gemv"])
def test_gpu_configs_are_valid_for_every_benchmark_shape(module, monkeypatch):
    for case in bench_cases(dry_run=False):
        if module is gemv and case.m > gemv.MAX_ROWS:
            continue
        layer = checks.LayerShape(case.k, case.n, case.group_size)
        config = module._validated(gpu_config(module, case.m, layer, monkeypatch), layer)
        assert 1 <= config.split_k <= -(-case.k // config.block_k), case


LAYERS = [Layer(k=512, n=48, group_size=128, zero_point=True, seed=21),
          Layer(k=200, n=24, group_size=-1, zero_point=False, seed=22)]


@pytest.mark.parametrize("layer", LAYERS, ids=["g128", "per-channel"])
@pytest.mark.parametrize("module,m", [(gemv, 1), (gemv, 3), (gemm, 5), (gemm, 33)])
def test_gpu_configs_compute_the_reference(layer, module, m, monkeypatch, triton_device):
    qw = random_weight(layer)
    t = {name: v.to(triton_device) for name, v in packed(qw).items()}
    config = gpu_config(module, m, layer_shape(layer), monkeypatch)
    assert config.split_k > 1, "small N: the GPU heuristic splits K"
    x = random_activations(m, layer.k, torch.float16, layer.seed).to(triton_device)
    fn = gemm.awq_gemm if module is gemm else gemv.awq_gemv
    y = fn(x, t["qweight"], t["qzeros"], t["scales"], config)
    assert_matches_reference(y.cpu(), x.cpu(), qw, "gemm" if module is gemm else "gemv")
