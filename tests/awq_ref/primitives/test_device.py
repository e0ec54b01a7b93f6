"""``--device`` parsing and resolution, and what ``auto`` means for the compute dtype on CUDA."""
import pytest
import torch

from awq_harness.awq_ref.primitives import compute_dtype as cd
from awq_harness.awq_ref.primitives.device import (
    CPU,
    DeviceError,
    device_of,
    parse_device,
    peak_memory,
    resolve_device,
    to_device,
)


@pytest.mark.parametrize("spec, parsed", [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("CUDA", ("cuda", None)),
                                          ("cuda:1", ("cuda", 1)), (" cuda:0 ", ("cuda", 0))])
def test_accepted_specs(spec, parsed):
    assert parse_device(spec) == parsed


@pytest.mark.parametrize("spec", ["gpu0", "cpu:0", "cuda:", "cuda:x", "mps", "auto:1", ""])
def test_other_specs_are_one_line_errors(spec):
    with pytest.raises(DeviceError, match="expected auto\\|cpu\\|cuda\\|cuda:N") as err:
        parse_device(spec)
    assert "\n" not in str(err.value)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


def test_without_cuda_auto_is_the_cpu_and_cuda_is_refused(no_cuda):
    assert resolve_device("auto") == CPU and resolve_device("cpu") == CPU
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(DeviceError, match=f"--device {spec}: torch .* sees no CUDA device") as err:
            resolve_device(spec)
        assert "\n" not in str(err.value)


def test_with_cuda_the_device_always_has_its_index(two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 1) == resolve_device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0) and resolve_device("cpu") == CPU
    with pytest.raises(DeviceError, match="only 2 CUDA device"):
        resolve_device("cuda:2")


def test_device_of_skips_meta_and_to_device_walks_containers():
    layer = torch.nn.Linear(2, 2, device="meta")
    assert device_of(layer) == CPU
    layer.register_buffer("freq", torch.ones(1))
    assert device_of(layer) == CPU
    moved = to_device({"a": (torch.ones(1), None), "b": [torch.zeros(1)], "c": 3}, torch.device("meta"))
    assert moved["a"][0].is_meta and moved["a"][1] is None and moved["b"][0].is_meta and moved["c"] == 3


def test_no_peak_device_memory_on_the_cpu():
    assert peak_memory(CPU) is None


@pytest.mark.parametrize("capability, dtype", [((8, 0), "bfloat16"), ((9, 0), "bfloat16"), ((8, 9), "bfloat16"),
                                               ((7, 5), "float16"), ((7, 0), "float16")])
def test_cuda_auto_is_bf16_from_sm80_else_fp16(capability, dtype):
    choice = cd.cuda_choice("NVIDIA X", capability)
    assert (choice.dtype, choice.requested) == (dtype, "auto") and choice.torch_dtype == cd.COMPUTE_DTYPES[dtype]
    assert f"sm{capability[0]}{capability[1]}" in choice.reason and "NVIDIA X" in choice.reason


def test_cuda_auto_reads_the_device_it_runs_on(monkeypatch):
    cd._auto_for.cache_clear()
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: f"GPU{d.index}")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: (7, 5) if d.index == 1 else (8, 6))
    try:
        assert cd.auto_choice("cuda:0").dtype == "bfloat16" and cd.auto_choice("cuda:1").dtype == "float16"
        assert "GPU1" in cd.choose("auto", torch.device("cuda", 1)).reason
    finally:
        cd._auto_for.cache_clear()
