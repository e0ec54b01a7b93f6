"""Checkpoint save/load: round trips, sharding, determinism, atomicity, clear errors."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open

from awq_harness.awq_ref.checkpoint.awq import INDEX_FILE, load_checkpoint
from awq_harness.awq_ref.errors import CheckpointError, HarnessError
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.awq_ref.checkpoint.helpers import TOKENS, file_digests, write_tiny_checkpoint


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt"])
@pytest.mark.parametrize("version", ["gemm", "gemv"])
def test_round_trip_reproduces_the_quantised_forward(tmp_path, family, version):
    model = write_tiny_checkpoint(tmp_path / "ck", family, version=version)
    loaded = load_checkpoint(tmp_path / "ck")
    with torch.no_grad():
        assert torch.equal(loaded(TOKENS).logits, model(TOKENS).logits)
    quantised = [m for m in loaded.modules() if isinstance(m, AwqLinear)]
    assert len(quantised) == sum(1 for m in model.modules() if isinstance(m, AwqLinear)) > 0
    assert all(m.version == version for m in quantised)


def test_config_carries_the_quantization_config(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck", spec=QuantSpec(4, 32, False), version="gemv")
    q = json.loads((tmp_path / "ck" / "config.json").read_text())["quantization_config"]
    assert q == {"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": False,
                 "version": "gemv", "modules_to_not_convert": None}


def test_gemm_tensors_have_autoawq_names_shapes_dtypes(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck", spec=QuantSpec(4, 64))
    with safe_open(tmp_path / "ck" / "model.safetensors", "pt") as f:
        prefix = "model.layers.0.mlp.down_proj."  # in 256, out 128
        assert f.get_slice(prefix + "qweight").get_shape() == [256, 16]
        assert f.get_slice(prefix + "qzeros").get_shape() == [4, 16]
        assert f.get_slice(prefix + "scales").get_shape() == [4, 128]
        assert f.get_slice(prefix + "scales").get_dtype() == "F16"
        assert f.get_slice("lm_head.weight").get_dtype() == "F16"
        assert prefix + "weight" not in f.keys()


def test_sharded_checkpoint_has_a_consistent_index(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck", max_shard_bytes=200_000)
    index = json.loads((tmp_path / "ck" / INDEX_FILE).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    seen = []
    for shard in shards:
        with safe_open(tmp_path / "ck" / shard, "pt") as f:
            seen += [k for k in f.keys() if index["weight_map"][k] == shard]
            assert all(index["weight_map"][k] == shard for k in f.keys())
    assert sorted(seen) == sorted(index["weight_map"])  # each tensor in exactly one shard
    load_checkpoint(tmp_path / "ck")


def test_same_inputs_and_seed_give_identical_bytes(tmp_path):
    write_tiny_checkpoint(tmp_path / "a", "qwen2", seed=7, max_shard_bytes=300_000)
    write_tiny_checkpoint(tmp_path / "b", "qwen2", seed=7, max_shard_bytes=300_000)
    write_tiny_checkpoint(tmp_path / "c", "qwen2", seed=8, max_shard_bytes=300_000)
    assert file_digests(tmp_path / "a") == file_digests(tmp_path / "b")
    assert file_digests(tmp_path / "a") != file_digests(tmp_path / "c")


def test_existing_destination_is_not_replaced_silently(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck")
    with pytest.raises(HarnessError, match="already exists"):
        write_tiny_checkpoint(tmp_path / "ck")
    before = file_digests(tmp_path / "ck")
    write_tiny_checkpoint(tmp_path / "ck", seed=3, overwrite=True)
    assert file_digests(tmp_path / "ck") != before
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_failure_half_way_leaves_nothing(tmp_path, monkeypatch):
    from awq_harness.awq_ref.checkpoint.safetensors_stream import ShardFile

    calls, real_write = [], ShardFile.write

    def failing_write(shard, name, tensor):
        calls.append(name)
        if len(calls) == 5:
            raise OSError("disk full")
        real_write(shard, name, tensor)

    monkeypatch.setattr(ShardFile, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_tiny_checkpoint(tmp_path / "ck", max_shard_bytes=200_000)
    assert len(calls) == 5
    assert list(tmp_path.iterdir()) == []


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from awq_harness.awq_ref.checkpoint.safetensors_stream import ShardFile
    from tests.awq_ref.checkpoint.helpers import write_tiny_checkpoint
    real = ShardFile.write
    count = []
    def write_then_die(shard, name, tensor):
        real(shard, name, tensor)
        count.append(name)
        if len(count) == 5:
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write, no cleanup runs
    ShardFile.write = write_then_die
    write_tiny_checkpoint(__import__("pathlib").Path(sys.argv[1]), max_shard_bytes=200_000)
""")


def test_kill_half_way_leaves_nothing_at_the_destination(tmp_path):
    dest = tmp_path / "ck"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(dest)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not dest.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert leftovers and all(name.startswith(".ck.partial-") for name in leftovers)


def test_missing_config_is_a_clear_error(tmp_path):
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_checkpoint(tmp_path / "empty")


def test_index_pointing_outside_the_folder_is_refused(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck", max_shard_bytes=200_000)
    index_path = tmp_path / "ck" / INDEX_FILE
    index = json.loads(index_path.read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = "../../etc/passwd"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        load_checkpoint(tmp_path / "ck")


def test_shape_mismatch_names_the_tensor(tmp_path):
    write_tiny_checkpoint(tmp_path / "ck")
    cfg_path = tmp_path / "ck" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["quantization_config"]["group_size"] = 32
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"qzeros has shape"):
        load_checkpoint(tmp_path / "ck")
