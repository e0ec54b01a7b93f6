"""quantize --keep-layers with single linears (tiny Llama): the kept linears are float in the
layer's AWQ basis, the checkpoint declares them, conforms and loads; both quantize paths agree."""
import json

import pytest
import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.models import load_model
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.model.walk import first_layer_inputs, run_layer
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.pipeline.keep import parse_keep
from awq_harness.conformance import verify

CALIB = ["--calib-samples", "2", "--seqlen", "64"]
LAYER1 = [f"model.layers.1.{n}" for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=2, layers=3)


KEEP = ",".join(["2", *LAYER1])


def _quantize(model_dir, out, *extra):
    assert main(["quantize", "--model", str(model_dir), "--method", "awq", *CALIB, "--keep-layers", KEEP,
                 *extra, "--out", str(out)]) == 0


@pytest.fixture(scope="module")
def checkpoints(model_dir, tmp_path_factory):
    """An AWQ checkpoint keeping every linear of layer 1 one by one, plus layer 2 whole (default path)."""
    root = tmp_path_factory.mktemp("keep")
    _quantize(model_dir, root / "streamed")
    return root


def _layer_output(model: nn.Module, index: int, ids: torch.Tensor) -> torch.Tensor:
    hidden, kwargs = first_layer_inputs(model, ids, torch.float32)
    for layer in decoder_layers(model)[:index]:
        hidden = run_layer(layer, hidden, kwargs)
    return hidden, run_layer(decoder_layers(model)[index], hidden, kwargs), kwargs


def test_kept_linears_are_float_and_in_the_folded_basis(model_dir, checkpoints):
    reference, mixed = load_model(model_dir), load_checkpoint(checkpoints / "streamed")
    layer = decoder_layers(mixed)[1]
    assert all(type(layer.get_submodule(n.split(".", 3)[3])) is nn.Linear for n in LAYER1)
    assert layer.input_layernorm.weight.ne(decoder_layers(reference)[1].input_layernorm.weight).any()  # AWQ folded it
    ids = torch.randint(3, 200, (2, 32), generator=torch.Generator().manual_seed(0))
    hidden, expected, kwargs = _layer_output(reference, 1, ids)
    got = run_layer(layer, hidden, kwargs)
    assert (got - expected).norm() / expected.norm() < 2e-3  # fp16 storage only; unfolded weights: O(1)


def test_the_checkpoint_declares_conforms_and_loads(checkpoints):
    folder = checkpoints / "streamed"
    config = json.loads((folder / "config.json").read_text())["quantization_config"]
    assert config["modules_to_not_convert"] == ["model.layers.2.", *sorted(LAYER1)]
    assert verify(folder).conforms
    model = load_checkpoint(folder)
    assert isinstance(model.model.layers[0].mlp.down_proj, AwqLinear)
    assert type(model.model.layers[2].mlp.down_proj) is nn.Linear
    meta = json.loads((folder / "awq_harness.json").read_text())
    assert meta["keep_linears"] == sorted(LAYER1) and not any(n in meta["linear_errors"] for n in LAYER1)


def test_layer_at_a_time_and_in_memory_write_the_same_bytes(model_dir, checkpoints):
    _quantize(model_dir, checkpoints / "in_memory", "--in-memory")
    for f in (checkpoints / "streamed").glob("*.safetensors"):
        assert f.read_bytes() == (checkpoints / "in_memory" / f.name).read_bytes()


def test_keep_spec_is_checked_against_the_model(model_dir):
    model = load_model(model_dir)
    keep = parse_keep("1,model.layers.1.mlp.up_proj,model.layers.0.mlp.down_proj", model)
    assert keep.layers == [1] and keep.linears == ["model.layers.0.mlp.down_proj"]  # layer 1 is float anyway
    assert keep.not_converted("model.layers") == ["model.layers.1.", "model.layers.0.mlp.down_proj"]
    for bad in ("model.layers.0.mlp", "model.layers.9.mlp.up_proj", "7"):
        with pytest.raises(HarnessError):
            parse_keep(bad, model)
