"""Quantising one decoder layer at a time writes the files the whole-model savers write for the
same model quantised in memory, byte for byte, with only one decoder layer in memory at a time."""
import filecmp
from pathlib import Path

import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, load_checkpoint, read_tensors, save_checkpoint
from awq_harness.awq_ref.checkpoint.gptq import save_gptq_checkpoint
from awq_harness.awq_ref.checkpoint.lazy import open_lazy
from awq_harness.awq_ref.checkpoint.writer import awq_output
from awq_harness.awq_ref.data.models import load_model
from awq_harness.awq_ref.data.tiny import tiny_model, tiny_tokenizer
from awq_harness.awq_ref.methods.awq import AwqStep
from awq_harness.awq_ref.methods.gptq import GptqStep, quantization_config, stored_weights
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.methods.rtn import RtnStep
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.layer_loop import Loaded, quantize_folder
from awq_harness.awq_ref.pipeline.quantize import output_layout, quantize_model, run_step
from awq_harness.awq_ref.primitives.quant import QuantSpec

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/awq_ref/conftest.py

IDS = torch.randint(0, 512, (4, 32), generator=torch.Generator().manual_seed(5))
META = {"made": "test"}


def _source(folder: Path, family: str, tied: bool = False, layers: int = 3) -> Path:
    model = tiny_model(family, seed=4, layers=layers)
    if tied:
        model.config.tie_word_embeddings = True
        model.lm_head.weight = model.get_input_embeddings().weight
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _in_memory(src: Path, out: Path, method: str, request: QuantizeRequest, max_shard_bytes=None) -> None:
    """Load the whole model, quantise it in place, save it with the whole-model savers."""
    model = load_model(src)
    if method == "gptq":
        step = GptqStep(request, IDS)
        run_step(model, step)
        save_gptq_checkpoint(model, stored_weights(step.result.weights), out,
                             quantization_config(request.spec, request.gptq), source=src, meta=META)
        return
    quantize_model(model, method, request, IDS)
    extra = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
    save_checkpoint(model, out, AwqConfig(request.spec, request.version), source=src, meta=META, **extra)


def _streamed(src: Path, out: Path, method: str, request: QuantizeRequest, max_shard_bytes=None, step=None):
    lazy = open_lazy(src)
    if method == "gptq":
        layout = output_layout(lazy.model, method, request, None)
    else:
        extra = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
        layout = awq_output(lazy.model, AwqConfig(request.spec, request.version), **extra)
    step = step or {"rtn": RtnStep(request), "awq": AwqStep(request, IDS), "gptq": GptqStep(request, IDS)}[method]
    return quantize_folder(lazy, out, step, layout, meta_for=lambda errors: META)


def _assert_same_folders(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert any(n.endswith(".safetensors") for n in names)
    differing = [n for n in names if not filecmp.cmp(a / n, b / n, shallow=False)]
    assert differing == []


@pytest.mark.parametrize("family, method, version", [
    ("llama", "rtn", "gemm"), ("qwen2", "rtn", "gemv"), ("opt", "rtn", "gemm"),
    ("llama", "awq", "gemm"), ("qwen2", "awq", "gemv"), ("opt", "awq", "gemm"),
    ("llama", "gptq", "gptq"), ("opt", "gptq", "gptq"),
    ("qwen2_moe", "rtn", "gemm"), ("mixtral", "gptq", "gptq"),  # experts as linears, read one layer at a time
])
def test_layer_at_a_time_writes_the_in_memory_bytes(tmp_path, family, method, version):
    src = _source(tmp_path / "src", family)
    request = QuantizeRequest(QuantSpec(4, 64, method != "gptq"), version)
    _in_memory(src, tmp_path / "mem", method, request)
    _streamed(src, tmp_path / "stream", method, request)
    _assert_same_folders(tmp_path / "mem", tmp_path / "stream")


@pytest.mark.parametrize("method", ["awq", "gptq"])
def test_tied_output_embeddings_are_omitted_and_still_identical(tmp_path, method):
    src = _source(tmp_path / "src", "llama", tied=True)
    request = QuantizeRequest(QuantSpec(4, 32, method != "gptq"), "gptq" if method == "gptq" else "gemm")
    _in_memory(src, tmp_path / "mem", method, request)
    _streamed(src, tmp_path / "stream", method, request)
    _assert_same_folders(tmp_path / "mem", tmp_path / "stream")
    assert "lm_head.weight" not in read_tensors(src) and "lm_head.weight" not in read_tensors(tmp_path / "stream")
    if method == "awq":
        loaded = load_checkpoint(tmp_path / "stream")
        assert loaded.lm_head.weight.data_ptr() == loaded.get_input_embeddings().weight.data_ptr()


def test_sharded_checkpoints_are_identical_too(tmp_path):
    src = _source(tmp_path / "src", "llama")
    request = QuantizeRequest(QuantSpec(4, 64), "gemm")
    _in_memory(src, tmp_path / "mem", "rtn", request, max_shard_bytes=100_000)
    _streamed(src, tmp_path / "stream", "rtn", request, max_shard_bytes=100_000)
    assert (tmp_path / "stream" / "model.safetensors.index.json").is_file()
    _assert_same_folders(tmp_path / "mem", tmp_path / "stream")


class _Watching(AwqStep):
    """Records, whenever a layer is quantised, which decoder layers hold real (non-meta) tensors."""

    def __init__(self, request, ids):
        super().__init__(request, ids)
        self.resident, self.head_resident = [], []

    def quantize(self, model, index, layer):
        self.resident.append([i for i, lay in enumerate(decoder_layers(model))
                              if any(not t.is_meta for t in lay.state_dict().values())])
        self.head_resident.append(not model.lm_head.weight.is_meta)
        return super().quantize(model, index, layer)


def test_only_the_layer_being_quantised_is_in_memory(tmp_path):
    src = _source(tmp_path / "src", "llama", layers=4)
    request = QuantizeRequest(QuantSpec(4, 64), "gemm")
    step = _Watching(request, IDS)
    errors = _streamed(src, tmp_path / "out", "awq", request, step=step)
    assert step.resident == [[0], [1], [2], [3]]
    assert step.head_resident == [False] * 4  # the output head is read last, alone
    assert len(errors) == 4 * 7


class _FailsAtLayer(RtnStep):
    def quantize(self, model, index, layer):
        if index == 1:
            raise RuntimeError("killed")
        return super().quantize(model, index, layer)


def test_an_interrupted_run_leaves_nothing_at_out(tmp_path):
    src = _source(tmp_path / "src", "llama")
    request = QuantizeRequest(QuantSpec(4, 64), "gemm")
    with pytest.raises(RuntimeError, match="killed"):
        _streamed(src, tmp_path / "out", "rtn", request, step=_FailsAtLayer(request))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize("method, version", [("rtn", "gemv"), ("awq", "gemm"), ("gptq", "gptq")])
def test_a_loaded_model_through_the_same_loop_writes_the_same_files(tmp_path, method, version):
    """``quantize --in-memory``: the loaded model as the loop's source, same step, same writer."""
    src = _source(tmp_path / "src", "llama")
    request = QuantizeRequest(QuantSpec(4, 64, method != "gptq"), version)
    _streamed(src, tmp_path / "stream", method, request)
    loaded = Loaded(load_model(src), src)
    step = {"rtn": RtnStep(request), "awq": AwqStep(request, IDS), "gptq": GptqStep(request, IDS)}[method]
    layout = output_layout(loaded.model, method, request, None)
    quantize_folder(loaded, tmp_path / "loaded", step, layout, meta_for=lambda errors: META)
    _assert_same_folders(tmp_path / "stream", tmp_path / "loaded")
