"""awq_gemv_layout (AutoAWQ's GEMV layout, decode) matches awq_ref within the stated bound,
never reads the layout's padding, rejects what it cannot serve, and its property catches
deliberately broken inputs and a launch that drops the last K block."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import awq_harness.kernels.dispatch  # noqa: F401 - kernels.dispatch is used through kernels
import awq_harness.kernels.gemv_layout  # noqa: F401 - kernels.gemv_layout is used through kernels
from awq_harness import kernels
from awq_harness.awq_ref.formats import awq_gemv
from awq_harness.awq_ref.formats.awq_gemm import ORDER
from awq_harness.awq_ref.formats.nibbles import NATURAL_ORDER, pack_last, unpack_last
from awq_harness.kernels.configs import Config
from awq_harness.kernels.gemv_layout import awq_gemv_layout
from tests.kernels.oracle import Layer, assert_matches_reference, random_activations, random_weight
from tests.kernels.strategies import EXAMPLES, SCALE_DTYPES, X_DTYPES, MatmulCase, rows
from tests.kernels.test_mutations import MUTATION_EXAMPLES, ShortenedK

GROUP_SIZES = (32, 64, 128, -1)  # the GEMV layout's (AutoAWQ pads the zeros for 32 and 64)


@st.composite
def gemv_layout_layers(draw, max_k: int = 256, max_n: int = 96) -> Layer:
    group = draw(st.sampled_from(GROUP_SIZES))
    # K is a multiple of 8 (the pack factor); per channel, K >= 128 (the layout's zeros width)
    k = 8 * draw(st.integers(16, max_k // 8)) if group == -1 else group * draw(st.integers(1, max(1, max_k // group)))
    return Layer(k=k, n=draw(st.integers(1, max_n)), group_size=group, zero_point=draw(st.booleans()),
                 seed=draw(st.integers(0, 2**31 - 1)), scale_dtype=draw(st.sampled_from(SCALE_DTYPES)))


def _k_block(layer: Layer):
    fits = [b for b in (16, 32, 64, 128) if layer.group_size == -1 or layer.group_size % b == 0]
    return st.sampled_from(fits)


@st.composite
def gemv_layout_cases(draw):
    layer = draw(gemv_layout_layers())
    case = MatmulCase(layer=layer, m=draw(rows(20)), x_dtype=draw(st.sampled_from(X_DTYPES)))
    config = Config(1, draw(st.sampled_from([16, 32, 64])), draw(_k_block(layer)),
                    split_k=draw(st.sampled_from([1, 2, 3])))
    return case, draw(st.sampled_from([config, None]))


def packed_gemv(layer: Layer, qw) -> dict[str, torch.Tensor]:
    return awq_gemv.pack(qw, scale_dtype=layer.scale_dtype)


def run_case(case: MatmulCase, config: Config | None, device: str, mutate=lambda t: t) -> None:
    qw = random_weight(case.layer)
    t = {name: v.to(device) for name, v in mutate(packed_gemv(case.layer, qw)).items()}
    x = random_activations(case.m, case.layer.k, case.x_dtype, case.layer.seed)
    y = awq_gemv_layout(x.to(device), t["qweight"], t["qzeros"], t["scales"], case.layer.group_size, config)
    assert_matches_reference(y.cpu(), x, qw, "gemv_layout")


EDGE = [
    (MatmulCase(Layer(k=32, n=1, group_size=32, zero_point=True, seed=30), m=1, x_dtype=torch.float16), None),
    (MatmulCase(Layer(k=200, n=40, group_size=-1, zero_point=False, seed=31), m=3, x_dtype=torch.float16),
     Config(1, 32, 16, split_k=4)),  # per channel, K not a block multiple, split-K beyond the K blocks
    (MatmulCase(Layer(k=256, n=96, group_size=64, zero_point=True, seed=32), m=17, x_dtype=torch.bfloat16),
     Config(1, 64, 64, split_k=2)),  # M over one row block: a second grid row of programs
]


@settings(max_examples=EXAMPLES["gemv_layout"])
@given(case_config=gemv_layout_cases())
@example(case_config=EDGE[0])
@example(case_config=EDGE[1])
@example(case_config=EDGE[2])
def test_gemv_layout_matches_reference(case_config, triton_device):
    run_case(*case_config, triton_device)


def poison_padding(layer: Layer):
    """NaN in the padded scale columns and 15 in the padded zero nibbles: a kernel that reads
    padding (or the wrong group) returns NaN or a wrong value."""
    groups = layer.k // (layer.k if layer.group_size == -1 else layer.group_size)

    def mutate(t: dict) -> dict:
        scales, zeros = t["scales"].clone(), unpack_last(t["qzeros"], 4)
        scales[:, groups:] = float("nan")
        zeros[:, groups:] = 15
        return {**t, "scales": scales, "qzeros": pack_last(zeros, 4)}
    return mutate


@pytest.mark.parametrize("group_size,k", [(32, 96), (64, 192), (128, 384)])
def test_gemv_layout_never_reads_padding(group_size, k, triton_device):
    layer = Layer(k=k, n=24, group_size=group_size, zero_point=True, seed=33)
    assert awq_gemv.zeros_width(k, group_size) * 8 > k // group_size, "the layout pads this shape"
    run_case(MatmulCase(layer, m=2, x_dtype=torch.float16), None, triton_device, poison_padding(layer))


# -- mutations: every example of the same property must fail -------------------------------

def natural_to_awq_order(t: dict) -> dict:
    """qweight and qzeros packed in AWQ's GEMM order: what a kernel reading the wrong order sees."""
    repack = lambda words: pack_last(unpack_last(words, 4, NATURAL_ORDER), 4, ORDER)  # noqa: E731
    return {**t, "qweight": repack(t["qweight"]), "qzeros": repack(t["qzeros"])}


def zero_off_by_one(t: dict) -> dict:
    return {**t, "qzeros": pack_last((unpack_last(t["qzeros"], 4) + 1) % 16, 4)}


def scales_of_next_group(t: dict) -> dict:
    """Each group's scale replaced by the next group's: a kernel indexing the group axis off by one."""
    return {**t, "scales": torch.roll(t["scales"], shifts=-1, dims=1)}


def _caught(mutate) -> None:
    @settings(max_examples=MUTATION_EXAMPLES, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(drawn=gemv_layout_cases())
    def prop(drawn):
        case, config = drawn
        with pytest.raises(AssertionError):
            run_case(case, config, "cpu", mutate)
    prop()


@pytest.mark.parametrize("mutation", [natural_to_awq_order, zero_off_by_one], ids=lambda f: f.__name__)
def test_gemv_layout_input_mutation_is_caught(mutation, dry_mode):
    _caught(mutation)


def test_gemv_layout_dropped_last_k_block_is_caught(monkeypatch, dry_mode):
    monkeypatch.setattr(kernels.gemv_layout, "awq_gemv_layout_kernel",
                        ShortenedK(kernels.gemv_layout.awq_gemv_layout_kernel))
    _caught(lambda t: t)


def test_gemv_layout_scale_group_off_by_one_is_caught(dry_mode):
    """Only layers with several groups can be off by one group; single-group draws are skipped."""
    @settings(max_examples=MUTATION_EXAMPLES, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(drawn=gemv_layout_cases())
    def prop(drawn):
        case, config = drawn
        layer = case.layer
        if layer.group_size == -1 or layer.k == layer.group_size:
            layer = Layer(4 * 32, layer.n, 32, layer.zero_point, layer.seed, layer.scale_dtype)
            case, config = MatmulCase(layer, case.m, case.x_dtype), None
        with pytest.raises(AssertionError):
            run_case(case, config, "cpu", scales_of_next_group)
    prop()


def test_gemv_layout_unmutated_property_passes(dry_mode):
    @settings(max_examples=MUTATION_EXAMPLES, phases=[Phase.generate], database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(drawn=gemv_layout_cases())
    def prop(drawn):
        run_case(*drawn, "cpu")
    prop()


# -- validation -----------------------------------------------------------------------------

BAD = {
    "qweight dtype": (lambda t: {**t, "qweight": t["qweight"].to(torch.int64)}, 64, "qweight dtype"),
    "qzeros width": (lambda t: {**t, "qzeros": t["qzeros"][:, :1]}, 64, "qzeros shape"),
    "scales width": (lambda t: {**t, "scales": t["scales"][:, :8]}, 64, "scales shape"),
    "group size not dividing K": (lambda t: t, 96, "does not divide"),
    "group size 16": (lambda t: t, 16, "group sizes 32, 64"),
    "group size 0": (lambda t: t, 0, "group_size must be"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_gemv_layout_rejects_bad_weights(name, triton_device):
    mutate, group_size, message = BAD[name]
    layer = Layer(k=128, n=16, group_size=64, zero_point=True, seed=34)
    t = {k: v.to(triton_device) for k, v in mutate(packed_gemv(layer, random_weight(layer))).items()}
    x = torch.randn(1, 128, dtype=torch.float16, device=triton_device)
    with pytest.raises(ValueError, match=message):
        awq_gemv_layout(x, t["qweight"], t["qzeros"], t["scales"], group_size)


# -- dispatch by the checkpoint's version ----------------------------------------------------

def test_awq_linear_dispatches_gemv_version_to_its_kernel(monkeypatch, triton_device):
    layer = Layer(k=128, n=24, group_size=64, zero_point=True, seed=35)
    qw = random_weight(layer)
    t = {k: v.to(triton_device) for k, v in packed_gemv(layer, qw).items()}
    x = random_activations(6, 128, torch.float16, 35)
    calls = []
    real = kernels.dispatch.awq_gemv_layout
    monkeypatch.setattr(kernels.dispatch, "awq_gemv_layout", lambda *a, **k: calls.append(a[-1]) or real(*a, **k))
    y = kernels.awq_linear(x.reshape(2, 3, 128).to(triton_device), t["qweight"], t["qzeros"], t["scales"],
                           version="gemv", group_size=64)
    assert calls == [64] and y.shape == (2, 3, 24)
    assert_matches_reference(y.reshape(6, 24).cpu(), x, qw, "gemv_layout")
    with pytest.raises(ValueError, match="group size"):
        kernels.awq_linear(x.to(triton_device), t["qweight"], t["qzeros"], t["scales"], version="gemv")


def test_gemv_layout_module_runs_through_the_kernel_when_asked(monkeypatch, triton_device):
    from awq_harness.awq_ref.modules.qlinear import AwqLinear, kernel_backend
    from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
    gen = torch.Generator().manual_seed(36)
    qw = quantize(torch.randn(40, 256, generator=gen), QuantSpec(4, 64, True), scale_dtype=torch.float16)
    module = AwqLinear.from_quantized(qw, "gemv", bias=torch.randn(40, generator=gen) * 0.1).to(triton_device)
    x = random_activations(1, 256, torch.float16, 36).to(triton_device)
    with kernel_backend("torch"):
        reference = module(x)
    calls = []
    real = kernels.dispatch.awq_gemv_layout
    monkeypatch.setattr(kernels.dispatch, "awq_gemv_layout", lambda *a, **k: calls.append(1) or real(*a, **k))
    with kernel_backend("triton"):
        through_kernel = module(x)
    assert calls == [1]
    torch.testing.assert_close(through_kernel, reference, rtol=2e-3, atol=2e-3)
