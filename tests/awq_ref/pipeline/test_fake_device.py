"""Every quantisation pipeline with its layers on a CUDA device, on the CPU build: FakeTensorMode's
``cuda`` tensors (``tests.fake_cuda``) make any op that mixes a cpu and a cuda tensor raise, so a
tensor the pipeline leaves on the CPU fails here as it would on the first GPU runner. The values
are not checked (fake tensors hold none); where each tensor lives is. Fake dispatch is slow, so the
default run uses small searches (AWQ: 2 scale and 2 clip points) and small models; the family
matrix runs under ``-m slow``."""
from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import unset_fake_temporarily

from awq_harness.awq_ref.checkpoint.lazy import LazyModel, open_lazy
from awq_harness.awq_ref.data.tiny import tiny_model, tiny_tokenizer
from awq_harness.awq_ref.methods.awq import AwqSearchConfig, AwqStep
from awq_harness.awq_ref.methods.gptq import GptqStep
from awq_harness.awq_ref.methods.method import LayerStep, WrappedStep
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.methods.rtn import RtnStep
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.modules.qlinear import AwqLinear, kernel_backend
from awq_harness.awq_ref.pipeline.layer_loop import quantize_layers
from awq_harness.awq_ref.pipeline.quantize import quantize_model, run_step
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from tests.fake_cuda import CUDA, devices, eager, fake_cuda, in_child

IDS = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(5))
STEPS = {"rtn": lambda r: RtnStep(r), "awq": lambda r: AwqStep(r, IDS), "gptq": lambda r: GptqStep(r, IDS)}


SMALL = {"hidden": 64, "intermediate": 128}
SIZES = {"rtn": SMALL, "awq": SMALL, "gptq": {"hidden": 32, "intermediate": 64}}  # GPTQ: one op set per column


def _request(method: str, version: str | None) -> QuantizeRequest:
    return QuantizeRequest(QuantSpec(4, 32, method != "gptq"), version,
                           awq=AwqSearchConfig(n_grid=2, clip_grid=4))


class Watch(WrappedStep):
    """Wraps a step; records, at each quantise, the devices of every decoder layer and of the
    carried hidden states."""

    def __init__(self, inner: LayerStep):
        super().__init__(inner)
        self.seen = []

    def quantize(self, model, index, layer):
        hidden = getattr(self.inner, "hidden", None)
        self.seen.append({"layers": [sorted(devices(lay.parameters())) for lay in decoder_layers(model)],
                          "hidden": None if hidden is None else str(hidden.device)})
        return self.inner.quantize(model, index, layer)


SLOW = pytest.mark.slow
MATRIX = [("llama", "rtn", "gemm"), ("llama", "awq", "gemm"), ("llama", "gptq", "gptq"),
          pytest.param("llama", "rtn", None, marks=SLOW), pytest.param("llama", "awq", None, marks=SLOW),
          pytest.param("qwen2", "awq", "gemv", marks=SLOW), pytest.param("opt", "awq", "gemm", marks=SLOW),
          pytest.param("qwen2", "gptq", "gptq", marks=SLOW), pytest.param("opt", "gptq", "gptq", marks=SLOW)]


@pytest.mark.parametrize("family, method, version", MATRIX)
def test_a_cpu_model_is_quantised_one_layer_at_a_time_on_the_device(family, method, version):
    def scenario():
        model = eager(tiny_model(family, seed=4, layers=2, **SIZES[method]))
        step = Watch(STEPS[method](_request(method, version)))
        with fake_cuda():
            errors = run_step(model, step, device=CUDA)
            return {"errors": len(errors), "seen": step.seen, "after": sorted(devices(model.state_dict().values()))}

    out = in_child(scenario)
    assert "ok" in out, out
    expected_hidden = None if method == "rtn" else "cuda:0"
    assert out["ok"]["seen"] == [{"layers": [["cuda:0"], ["cpu"]], "hidden": expected_hidden},
                                 {"layers": [["cpu"], ["cuda:0"]], "hidden": expected_hidden}]
    assert out["ok"]["after"] == ["cpu"] and out["ok"]["errors"] == 2 * (7 if family != "opt" else 6)


@pytest.mark.parametrize("method, version", [("awq", "gemm"), pytest.param("rtn", "gemm", marks=SLOW),
                                             pytest.param("gptq", "gptq", marks=SLOW)])
def test_a_model_already_on_the_device_is_quantised_there(method, version):
    """The contract for other code: ``quantize_model(model, method, request, calibration)`` of a
    model on CUDA leaves it there, packed buffers included."""
    def scenario():
        model = eager(tiny_model("llama", seed=4, layers=2, **SMALL))
        with fake_cuda():
            model.to(CUDA)
            quantize_model(model, method, _request(method, version), IDS)
            packed = [m for m in model.modules() if isinstance(m, AwqLinear)]
            return {"devices": sorted(devices(model.state_dict().values())), "packed": len(packed)}

    out = in_child(scenario)
    assert out.get("ok", {}).get("devices") == ["cuda:0"], out
    assert out["ok"]["packed"] == (14 if version == "gemm" else 0)


class Recorder:
    """A writer that keeps the device of every tensor it is given (the real one writes bytes)."""

    def __init__(self):
        self.devices = {}

    def wants(self, name):
        return True

    def write(self, name, tensor):
        self.devices[name] = str(tensor.device)

    def write_all(self, tensors):
        for name, tensor in tensors.items():
            self.write(name, tensor)


_LOAD = LazyModel.load


class RealReads(LazyModel):
    """The folder is read into real CPU tensors, as on a GPU machine (disk -> host -> device)."""

    def load(self, names):
        with unset_fake_temporarily():
            _LOAD(self, names)

    def unload(self, names):
        """Back to ``meta``, as ``LazyModel.unload`` (accelerate cannot rebuild a fake parameter's class)."""
        for name in names:
            module_name, _, attr = name.rpartition(".")
            module = self.model.get_submodule(module_name)
            tensor = getattr(module, attr)
            with unset_fake_temporarily():
                empty = torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")
            if attr in module._parameters:
                module._parameters[attr] = torch.nn.Parameter(empty, requires_grad=False)
            else:
                module._buffers[attr] = empty


@pytest.mark.parametrize("method, version", [("rtn", "gemm"), pytest.param("awq", "gemv", marks=SLOW),
                                             pytest.param("gptq", "gptq", marks=SLOW)])
def test_streamed_from_disk_each_layer_is_quantised_on_the_device_and_written_from_the_cpu(tmp_path, method,
                                                                                          version):
    model = tiny_model("llama", seed=4, layers=2, **SMALL)
    model.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)

    def scenario():
        opened = open_lazy(tmp_path)
        lazy = RealReads(opened.folder, eager(opened.model), opened.files, opened.dtype)
        step, writer = Watch(STEPS[method](_request(method, version))), Recorder()
        with fake_cuda():
            quantize_layers(lazy, step, writer, device=CUDA)
        return {"seen": step.seen, "written": sorted(set(writer.devices.values())), "n": len(writer.devices)}

    out = in_child(scenario)
    assert "ok" in out, out
    layers = [lay["layers"] for lay in out["ok"]["seen"]]
    assert layers == [[["cuda:0"], ["meta"]], [["meta"], ["cuda:0"]]]  # the other layer is not even read
    assert out["ok"]["written"] == ["cpu"] and out["ok"]["n"] > 2 * 7


def test_the_quantised_linear_runs_on_the_device():
    def scenario():
        w = torch.randn(128, 256, generator=torch.Generator().manual_seed(0))  # [N, K]
        with fake_cuda():
            qw = quantize(w.to(CUDA), QuantSpec(4, 64), scale_dtype=torch.float16)
            results = {}
            for version in ("gemm", "gemv"):
                linear = AwqLinear.from_quantized(qw, version, torch.zeros(128, device=CUDA))
                with kernel_backend("torch"):
                    y = linear(torch.randn(3, 256, device=CUDA, dtype=torch.float16))
                results[version] = [sorted(devices(linear.state_dict().values())), str(y.device)]
            moved = linear.to(torch.device("cpu"))
            results["moved"] = str(moved(torch.randn(3, 256, dtype=torch.float16)).device)
            return results

    out = in_child(scenario)
    assert out.get("ok") == {"gemm": [["cuda:0"], "cuda:0"], "gemv": [["cuda:0"], "cuda:0"], "moved": "cpu"}, out


class MisplacedCpu(AwqStep):
    """The negative control: a layer step that copies the carried activations to the CPU."""

    def quantize(self, model, index, layer):
        self.hidden = self.hidden.cpu()  # the deliberate bug
        return super().quantize(model, index, layer)


def test_a_misplaced_cpu_copy_in_a_layer_step_is_caught():
    def scenario(step_type):
        def run():
            model = eager(tiny_model("llama", seed=4, layers=1, **SMALL))
            with fake_cuda():
                return len(run_step(model, step_type(_request("awq", "gemm"), IDS), device=CUDA))
        return run

    assert in_child(scenario(AwqStep)) == {"ok": 7}
    caught = in_child(scenario(MisplacedCpu))
    assert caught["error"] in ("FakeTensorDeviceMismatchError", "RuntimeError"), caught
    assert "cpu" in caught["message"] and "cuda" in caught["message"], caught


def _real_reads_everywhere() -> None:
    """In the child only: the layer-wise comparison opens its folders as real skeletons, and every
    LazyModel reads real CPU tensors and drops fake ones (``RealReads``)."""
    from awq_harness.awq_ref.mixed_precision import layerwise

    def open_real(*args, **kwargs):
        with unset_fake_temporarily():
            return open_lazy(*args, **kwargs)

    LazyModel.load, LazyModel.unload = RealReads.load, RealReads.unload
    layerwise.open_lazy = open_real


def test_the_layerwise_comparison_and_sensitivity_run_on_the_device(tmp_path):
    from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
    from awq_harness.awq_ref.mixed_precision.layerwise import compare_layerwise
    from awq_harness.awq_ref.mixed_precision.sensitivity import layer_sensitivity

    float_model = tiny_model("llama", seed=4, layers=2, **SMALL)
    float_model.save_pretrained(tmp_path / "fp")
    quantized = tiny_model("llama", seed=4, layers=2, **SMALL)
    quantize_model(quantized, "rtn", _request("rtn", "gemm"))
    save_checkpoint(quantized, tmp_path / "q", AwqConfig(QuantSpec(4, 32), "gemm"), source=tmp_path / "fp")

    def scenario():
        _real_reads_everywhere()
        with fake_cuda():
            report = compare_layerwise(str(tmp_path / "fp"), str(tmp_path / "q"), IDS, device=CUDA)
            eager(float_model).to(CUDA)
            eager(quantized).to(CUDA)
            ranking = layer_sensitivity(float_model, quantized, IDS)
        return {"layers": len(report.layers), "ranked": len(ranking)}

    assert in_child(scenario) == {"ok": {"layers": 2, "ranked": 2}}


def test_the_quantised_linear_dispatches_cuda_inputs_to_the_kernels_up_to_the_launch():
    """``auto``: a CUDA input goes to the Triton kernels; each path's launch gets tensors on one device
    (the launches themselves are replaced: no GPU to run them on)."""
    def scenario():
        from awq_harness import kernels
        from awq_harness.kernels import checks, dispatch

        launched = []

        def launch(name):
            def fake_kernel(*tensors, dtype=None):
                launched.append([name, sorted(devices(t for t in tensors if isinstance(t, torch.Tensor)))])
                qweight = tensors[0] if name == "dequant" else tensors[1]  # [K, N / 8]
                rows = qweight.shape[0] if name == "dequant" else tensors[0].shape[0]  # W_hat [K, N]; y [M, N]
                return torch.zeros(rows, qweight.shape[1] * 8, device=tensors[0].device, dtype=dtype or torch.float16)
            return fake_kernel

        kernels.triton_can_run = checks.triton_can_run = lambda device: torch.device(device).type == "cuda"
        dispatch.awq_gemv, dispatch.awq_gemm = launch("gemv"), launch("gemm")
        dispatch.awq_dequantize = lambda q, z, s, dtype: launch("dequant")(q, z, s, dtype=dtype)
        w = torch.randn(128, 256, generator=torch.Generator().manual_seed(0))
        with fake_cuda():
            qw = quantize(w.to(CUDA), QuantSpec(4, 64), scale_dtype=torch.float16)
            linear = AwqLinear.from_quantized(qw, "gemm", torch.zeros(128, device=CUDA))
            outs = [str(linear(torch.randn(m, 256, device=CUDA, dtype=torch.float16)).device) for m in (2, 16, 300)]
        return {"launched": launched, "outs": outs}

    out = in_child(scenario)
    assert out.get("ok") == {"launched": [["gemv", ["cuda:0"]], ["gemm", ["cuda:0"]], ["dequant", ["cuda:0"]]],
                             "outs": ["cuda:0"] * 3}, out
