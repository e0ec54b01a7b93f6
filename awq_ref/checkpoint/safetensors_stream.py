"""Write safetensors shards one tensor at a time, byte-identical to ``safetensors.torch.save_file``.

A checkpoint made layer by layer never holds all its tensors at once, yet its files must be
the ones the in-memory path writes. So the layout is decided up front from a *plan*
(tensor name -> shape and dtype, known from the model's skeleton before any weight is read):
the shard split (``shard_groups``, the same greedy split by sorted name the in-memory path
uses), and inside each file the header and every tensor's byte range. Tensors may then
arrive in any order; each is written at its offset and can be dropped at once.

What ``save_file`` writes (safetensors 0.8, checked against it by the tests): an 8-byte
little-endian header length; the header, compact JSON with ``__metadata__`` first and then
the tensors in data order, padded with spaces to a multiple of 8; the data, ordered by dtype
(descending rank in safetensors' dtype enum) and then by name.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from awq_harness.awq_ref.errors import CheckpointError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
FILE_METADATA = {"format": "pt"}

# safetensors' Dtype enum order (data are sorted by it, highest first) and names.
DTYPES = [(torch.bool, "BOOL"), (torch.uint8, "U8"), (torch.int8, "I8"), (torch.int16, "I16"),
          (torch.float16, "F16"), (torch.bfloat16, "BF16"), (torch.int32, "I32"), (torch.float32, "F32"),
          (torch.float64, "F64"), (torch.int64, "I64")]
DTYPE_NAME = dict(DTYPES)
DTYPE_RANK = {dtype: rank for rank, (dtype, _) in enumerate(DTYPES)}


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * self.dtype.itemsize

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorSpec":
        return cls(tuple(tensor.shape), tensor.dtype)


def shard_groups(sizes: dict[str, int], max_bytes: int) -> list[list[str]]:
    """Names in sorted order, cut into shards of at most ``max_bytes`` (a bigger tensor stands alone)."""
    shards, current, size = [], [], 0
    for name in sorted(sizes):
        if current and size + sizes[name] > max_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += sizes[name]
    return shards + [current]


def shard_file_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_FILE]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def data_order(plan: dict[str, TensorSpec]) -> list[str]:
    for name, spec in plan.items():
        if spec.dtype not in DTYPE_RANK:
            raise CheckpointError(f"tensor {name}: dtype {spec.dtype} has no safetensors name here")
    return sorted(plan, key=lambda name: (-DTYPE_RANK[plan[name].dtype], name))


def layout_header(plan: dict[str, TensorSpec]) -> tuple[bytes, dict[str, int]]:
    """The file's first bytes (length + padded header) and each tensor's data offset."""
    entries, offsets, position = {"__metadata__": FILE_METADATA}, {}, 0
    for name in data_order(plan):
        spec = plan[name]
        offsets[name] = position
        entries[name] = {"dtype": DTYPE_NAME[spec.dtype], "shape": list(spec.shape),
                         "data_offsets": [position, position + spec.nbytes]}
        position += spec.nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header, offsets


class ShardFile:
    """One safetensors file: header written at once, tensors at their offsets as they come."""

    def __init__(self, path: Path, plan: dict[str, TensorSpec]):
        header, self.offsets = layout_header(plan)
        self.path, self.plan, self.base = path, plan, len(header)
        self.handle = open(path, "wb")
        self.handle.write(header)
        self.handle.truncate(self.base + sum(spec.nbytes for spec in plan.values()))
        self.missing = set(plan)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if TensorSpec.of(tensor) != self.plan[name]:
            raise CheckpointError(f"{self.path.name}: tensor {name} is {tuple(tensor.shape)} {tensor.dtype}, "
                                  f"planned {self.plan[name].shape} {self.plan[name].dtype}")
        if name not in self.missing:
            raise CheckpointError(f"{self.path.name}: tensor {name} written twice")
        self.handle.seek(self.base + self.offsets[name])
        self.handle.write(tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self.missing.discard(name)

    def close(self) -> None:
        self.handle.close()


class ShardedWriter:
    """All shards of a checkpoint from one plan (``checkpoint.writer`` writes their index)."""

    def __init__(self, folder: Path, plan: dict[str, TensorSpec], max_shard_bytes: int):
        groups = shard_groups({name: spec.nbytes for name, spec in plan.items()}, max_shard_bytes)
        self.folder, self.plan = folder, plan
        self.file_of: dict[str, ShardFile] = {}
        self.files = []
        for group, file_name in zip(groups, shard_file_names(len(groups))):
            shard = ShardFile(folder / file_name, {name: plan[name] for name in group})
            self.files.append(shard)
            self.file_of.update({name: shard for name in group})

    def wants(self, name: str) -> bool:
        return name in self.file_of

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if name not in self.file_of:
            raise CheckpointError(f"tensor {name} is not in the checkpoint's plan")
        self.file_of[name].write(name, tensor)

    def write_all(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, tensor in tensors.items():
            self.write(name, tensor)

    def close(self) -> None:
        for shard in self.files:
            shard.close()

    def finish(self) -> None:
        """Close every file; refuse a checkpoint with a planned tensor never written."""
        self.close()
        missing = sorted(name for shard in self.files for name in shard.missing)
        if missing:
            raise CheckpointError(f"{len(missing)} planned tensors were never written, e.g. {missing[:3]}")

    def weight_map(self) -> dict[str, str]:
        return {name: shard.path.name for name, shard in sorted(self.file_of.items())}

    def total_size(self) -> int:
        return sum(spec.nbytes for spec in self.plan.values())
