"""The streaming shard writer writes the bytes safetensors' save_file writes, shard by shard."""
import random

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from awq_harness.awq_ref.checkpoint.safetensors_stream import ShardedWriter, TensorSpec
from awq_harness.awq_ref.errors import CheckpointError

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.int32, torch.int64, torch.uint8, torch.int8,
          torch.bool, torch.float64, torch.int16]


def _random_tensors(seed: int, count: int = 12) -> dict[str, torch.Tensor]:
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(count):
        shape = tuple(rng.randint(0, 5) for _ in range(rng.randint(0, 3)))
        dtype = rng.choice(DTYPES)
        values = torch.randint(0, 100, shape, generator=gen) if shape else torch.randint(0, 100, (), generator=gen)
        tensors[f"{rng.choice('abz')}.{i}.{rng.choice(['w', 'qweight', 'scales'])}"] = values.to(dtype)
    return tensors


def _stream(tensors: dict, folder, max_bytes: int, seed: int) -> None:
    writer = ShardedWriter(folder, {n: TensorSpec.of(t) for n, t in tensors.items()}, max_bytes)
    order = list(tensors)
    random.Random(seed).shuffle(order)  # tensors arrive in any order
    for name in order:
        writer.write(name, tensors[name])
    writer.finish()


@pytest.mark.parametrize("seed", range(6))
def test_one_file_equals_save_file_byte_for_byte(tmp_path, seed):
    tensors = _random_tensors(seed)
    save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    (tmp_path / "s").mkdir()
    _stream(tensors, tmp_path / "s", 1 << 40, seed)
    assert (tmp_path / "s" / "model.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


@pytest.mark.parametrize("max_bytes", [1, 40, 200])
def test_each_shard_is_save_file_of_a_run_of_sorted_names(tmp_path, max_bytes):
    tensors = _random_tensors(7, count=20)
    _stream(tensors, tmp_path, max_bytes, 3)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) > (1 if max_bytes < 200 else 0)
    runs = []
    for name in files:
        with safe_open(tmp_path / name, "pt") as f:
            names = sorted(f.keys())
        save_file({n: tensors[n] for n in names}, tmp_path.parent / "ref.safetensors", metadata={"format": "pt"})
        assert (tmp_path / name).read_bytes() == (tmp_path.parent / "ref.safetensors").read_bytes(), name
        runs += names
        first_of_next = sorted(tensors)[len(runs)] if len(runs) < len(tensors) else None
        size = sum(tensors[n].numel() * tensors[n].element_size() for n in names)
        if first_of_next is not None and len(names) > 1:  # greedy: the next tensor would not have fit
            assert size <= max_bytes < size + tensors[first_of_next].numel() * tensors[first_of_next].element_size()
    assert runs == sorted(tensors)  # each file holds the next run of names in sorted order


def test_a_tensor_that_differs_from_the_plan_is_refused(tmp_path):
    writer = ShardedWriter(tmp_path, {"w": TensorSpec((2, 4), torch.float16)}, 1 << 30)
    with pytest.raises(CheckpointError, match="planned"):
        writer.write("w", torch.zeros(2, 4, dtype=torch.float32))
    with pytest.raises(CheckpointError, match="not in the checkpoint's plan"):
        writer.write("other", torch.zeros(1))
    writer.write("w", torch.ones(2, 4, dtype=torch.float16))
    with pytest.raises(CheckpointError, match="twice"):
        writer.write("w", torch.ones(2, 4, dtype=torch.float16))


def test_a_planned_tensor_never_written_fails_the_checkpoint(tmp_path):
    writer = ShardedWriter(tmp_path, {"a": TensorSpec((3,), torch.int32), "b": TensorSpec((1,), torch.int32)}, 1 << 30)
    writer.write("a", torch.arange(3, dtype=torch.int32))
    with pytest.raises(CheckpointError, match="never written.*'b'"):
        writer.finish()


def test_written_values_read_back(tmp_path):
    tensors = _random_tensors(11)
    _stream(tensors, tmp_path, 1 << 40, 0)
    back = load_file(tmp_path / "model.safetensors")
    assert back.keys() == tensors.keys() and all(torch.equal(back[n], t) for n, t in tensors.items())
