"""The per-architecture configuration lists and the autotuner's pick over them."""
import pytest
import torch

from awq_harness.kernels import configs, gemv, gemv_layout, tuning
from awq_harness.kernels.bench.shapes import GROUP_SIZE, LAYERS
from awq_harness.kernels.checks import LayerShape

LAYER_SHAPES = [LayerShape(k, n, g) for k, n in LAYERS.values() for g in (32, 64, GROUP_SIZE)]
BUDGETS = {"gemv": gemv.TILE_BUDGET, "gemv_layout": gemv_layout.TILE_BUDGET}


@pytest.mark.parametrize("arch", list(configs.ARCHS))
@pytest.mark.parametrize("kernel", configs.KERNELS)
def test_every_entry_fits_every_benchmark_layer(arch, kernel):
    """BLOCK_K divides G, split-K never exceeds the K blocks, the GEMV tiles stay in their register budget."""
    for layer in LAYER_SHAPES:
        for m in (1, 3, 16, 17, 64, 200, 1024):
            try:
                entries = configs.candidates(arch, kernel, m, layer)
            except ValueError:
                assert kernel != "gemm" and m > 16, (kernel, m)  # the GEMV kernels serve decode only
                continue
            for c in entries:
                assert layer.group_size % c.block_k == 0 and c.block_k >= 16, c
                assert 1 <= c.split_k <= -(-layer.k // c.block_k) and c.split_k <= configs.MAX_SPLIT_K, c
                if kernel in BUDGETS:
                    assert min(16, c.block_m) * c.block_n * c.block_k <= BUDGETS[kernel], c


def test_buckets_are_ordered_and_cover_decode():
    for table in configs.TABLES.values():
        for kernel, buckets in table.items():
            tops = [top for top, _ in buckets]
            assert tops == sorted(tops) and tops[0] >= 1 and all(entries for _, entries in buckets), kernel
            assert configs.bucket(kernel, 1, "sm_80")[0] == tops[0]


def test_architecture_of_a_capability():
    assert configs.arch_of_capability(9, 0) == "sm_90"
    assert configs.arch_of_capability(8, 7) == "sm_86"  # Orin: the nearest listed part below
    assert configs.arch_of_capability(12, 0) == "sm_90"
    with pytest.raises(ValueError, match="older"):
        configs.arch_of_capability(7, 5)


def test_pick_on_the_interpreter_is_the_wrappers_one_configuration():
    layer, x = LayerShape(256, 64, 64), torch.zeros(1, 256)
    assert tuning.pick("gemv_layout", 1, layer, x, gemv_layout.default_config) == gemv_layout.default_config(1, layer)


def test_autotune_keeps_the_fastest_entry_and_times_it_once(monkeypatch):
    layer, x = LayerShape(4096, 4096, 128), torch.zeros(16, 4096)
    entries = configs.candidates("sm_90", "gemm", 16, layer)
    assert len(entries) > 1
    cost = {c: 3.0 - i for i, c in enumerate(entries)}  # the last entry is the fastest
    timed = []

    def timer(fn):
        return fn()

    def launch(c):
        timed.append(c)
        return cost[c]

    monkeypatch.setattr(tuning, "_chosen", {})
    monkeypatch.setattr(tuning, "AUTOTUNE", True)
    picked = tuning.pick("gemm", 16, layer, x, None, launch, arch="sm_90", timer=timer)
    assert picked == entries[-1] and timed == entries
    again = tuning.pick("gemm", 9, layer, x, None, launch, arch="sm_90", timer=timer)  # same bucket (M <= 16)
    assert again == picked and len(timed) == len(entries)
    monkeypatch.setattr(tuning, "AUTOTUNE", False)
    assert tuning.pick("gemm", 64, layer, x, None, launch, arch="sm_90", timer=timer) == \
        configs.candidates("sm_90", "gemm", 64, layer)[0]
