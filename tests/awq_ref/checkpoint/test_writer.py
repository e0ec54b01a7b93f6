"""Every checkpoint we write (AWQ in memory, AWQ streamed, GPTQ, converted) has one folder layout:
the same config rules, side-file rule, tied-head rule, shards and index; and the in-memory AWQ
saver writes the streamed writer's bytes."""
import copy
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_harness.awq_ref.checkpoint.gptq import save_gptq_checkpoint
from awq_harness.awq_ref.checkpoint.plan import stored_tensor
from awq_harness.awq_ref.checkpoint.writer import (
    DEFAULT_MAX_SHARD_BYTES,
    META_FILE,
    awq_output,
    checkpoint_config,
    streamed_checkpoint,
    write_json,
)
from awq_harness.awq_ref.data.tiny import tiny_config_dict
from awq_harness.awq_ref.methods.gptq import GptqConfig, quantization_config, stored_weights
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.model.compat import causal_lm_from_config
from awq_harness.awq_ref.pipeline.quantize import method_step, quantize_model, run_step
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.conformance.convert import convert
from tests.awq_ref.checkpoint.helpers import file_digests

SPEC = QuantSpec(4, 64)
PATHS = ["awq", "streamed", "gptq", "converted"]
SIDE_FILES = {"tokenizer.json", "generation_config.json"}
WRITTEN = {"config.json", "model.safetensors", "model.safetensors.index.json", META_FILE}
NOT_COPIED = ["weights.bin", "extra.pt", "state.pth", "notes.pkl", "pytorch_model.bin.index.json"]
SMALL_SHARDS = 200_000
QUANT_METHOD = {"awq": "awq", "streamed": "awq", "gptq": "gptq", "converted": "compressed-tensors"}


def float_model(tied: bool = False):
    torch.manual_seed(0)
    config = AutoConfig.for_model(**{**tiny_config_dict("llama"), "tie_word_embeddings": tied})
    return causal_lm_from_config(config, torch.float32).eval()


def nested_rope_base() -> dict:
    """A transformers 5.x style config: rope_theta only inside rope_parameters."""
    base = {k: v for k, v in tiny_config_dict("llama").items() if k != "rope_theta"}
    return base | {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}


def add_side_files(folder: Path) -> None:
    """Tokenizer files to copy, and weights, pickles, an index of pickles and a symlink never to copy."""
    for name in SIDE_FILES:
        (folder / name).write_text("{}\n")
    for name in NOT_COPIED:
        (folder / name).write_bytes(b"\x80\x04not really a pickle")
    os.symlink("tokenizer.json", folder / "tokenizer_config.json")  # inside: the verifier refuses others
    (folder / "subfolder").mkdir()


def source_folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    add_side_files(src)
    (src / "config.json").write_text("{}\n")
    (src / META_FILE).write_text("{}\n")
    return src


def rtn_copy(model):
    quantised = copy.deepcopy(model)
    quantize_model(quantised, "rtn", QuantizeRequest(SPEC, "gemm"))
    return quantised


def write_awq(model, out, src, config=None, max_shard_bytes=DEFAULT_MAX_SHARD_BYTES):
    save_checkpoint(rtn_copy(model), out, AwqConfig(SPEC), source=src, config=config,
                    max_shard_bytes=max_shard_bytes, meta={"how": "test"})


def write_streamed(model, out, src, config=None, max_shard_bytes=DEFAULT_MAX_SHARD_BYTES):
    layout = awq_output(model, AwqConfig(SPEC), max_shard_bytes, base_config=config)
    state = rtn_copy(model).state_dict()
    with streamed_checkpoint(out, layout, src) as (writer, staging):
        for name in sorted(state, reverse=True):  # any order
            if writer.wants(name):
                writer.write(name, stored_tensor(state[name]))
        write_json(staging / META_FILE, {"how": "test"})


def write_gptq(model, out, src, config=None, max_shard_bytes=DEFAULT_MAX_SHARD_BYTES):
    model = copy.deepcopy(model)
    calib = torch.randint(0, 512, (2, 32), generator=torch.Generator().manual_seed(0))
    step = method_step("gptq", QuantizeRequest(SPEC, "gptq"), calib)
    run_step(model, step)
    save_gptq_checkpoint(model, stored_weights(step.result.weights), out, quantization_config(SPEC, GptqConfig()),
                         source=src, base_config=config, max_shard_bytes=max_shard_bytes)


def add_tied_head(folder: Path) -> None:
    """A source that stores its tied head anyway (some tools do)."""
    tensors = load_file(folder / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})


def write_converted(model, out, src, config=None, max_shard_bytes=DEFAULT_MAX_SHARD_BYTES):
    gemm = out.parent / f"{out.name}-gemm"
    save_checkpoint(rtn_copy(model), gemm, AwqConfig(SPEC), config=config)
    add_side_files(gemm)
    cfg = json.loads((gemm / "config.json").read_text())
    if config is not None and "rope_theta" not in config:
        del cfg["rope_theta"]  # the source says only what the base says
        (gemm / "config.json").write_text(json.dumps(cfg))
    if cfg["tie_word_embeddings"]:
        add_tied_head(gemm)
    convert(gemm, out, "compressed-tensors", max_shard_bytes=max_shard_bytes)


WRITERS = {"awq": write_awq, "streamed": write_streamed, "gptq": write_gptq, "converted": write_converted}


def tensor_names(folder: Path) -> dict[str, str]:
    names = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as f:
            names.update({name: path.name for name in f.keys()})
    return names


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("base", ["nested", "model"])
def test_config_has_a_flat_rope_theta_and_clean_keys(tmp_path, path, base):
    config = nested_rope_base() | {"_name_or_path": "/somewhere", "transformers_version": "5.0"}
    WRITERS[path](float_model(), tmp_path / "out", None, config=config if base == "nested" else None)
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["rope_theta"] == 10000.0 == cfg["rope_parameters"]["rope_theta"]
    assert cfg["dtype"] == cfg["torch_dtype"] == "float16"
    assert not {"_name_or_path", "_model_name_or_path", "transformers_version"} & set(cfg)
    assert cfg["quantization_config"]["quant_method"] == QUANT_METHOD[path]


def test_config_keeps_a_flat_rope_theta_the_base_has():
    base = nested_rope_base() | {"rope_theta": 5.0}
    assert checkpoint_config(base, {"quant_method": "awq"})["rope_theta"] == 5.0
    assert "rope_theta" not in checkpoint_config(tiny_config_dict("opt"), {"quant_method": "awq"})


@pytest.mark.parametrize("path", PATHS)
def test_only_regular_non_weight_side_files_are_copied(tmp_path, path):
    WRITERS[path](float_model(), tmp_path / "out", source_folder(tmp_path))
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} - WRITTEN == SIDE_FILES
    assert not any(p.is_symlink() for p in out.iterdir())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("tied", [True, False])
def test_tied_head_is_omitted_exactly_when_tied(tmp_path, path, tied):
    WRITERS[path](float_model(tied), tmp_path / "out", None)
    names = tensor_names(tmp_path / "out")
    assert ("lm_head.weight" in names) == (not tied)
    assert "model.embed_tokens.weight" in names


@pytest.mark.parametrize("path", PATHS)
def test_sharded_index_is_the_same_from_every_path(tmp_path, path):
    WRITERS[path](float_model(), tmp_path / "out", None, max_shard_bytes=SMALL_SHARDS)
    out = tmp_path / "out"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(files) > 1 and files == [f"model-{i:05d}-of-{len(files):05d}.safetensors"
                                        for i in range(1, len(files) + 1)]
    assert set(index) == {"metadata", "weight_map"} and index["weight_map"] == tensor_names(out)
    total = sum(t.numel() * t.element_size() for f in files for t in load_file(out / f).values())
    assert index["metadata"] == {"total_size": total}
    assert list(index["weight_map"]) == sorted(index["weight_map"])


@pytest.mark.parametrize("max_shard_bytes", [SMALL_SHARDS, DEFAULT_MAX_SHARD_BYTES])
def test_save_checkpoint_writes_the_streamed_bytes(tmp_path, max_shard_bytes):
    model, src = float_model(), source_folder(tmp_path)
    write_awq(model, tmp_path / "mem", src, max_shard_bytes=max_shard_bytes)
    write_streamed(model, tmp_path / "stream", src, max_shard_bytes=max_shard_bytes)
    assert file_digests(tmp_path / "mem") == file_digests(tmp_path / "stream")
    assert len(file_digests(tmp_path / "mem")) > (5 if max_shard_bytes == SMALL_SHARDS else 4)

