"""Read one tensor at a time, memory-mapped, from byte ranges the header checks approved.

A tensor is a copy-on-write numpy memmap of exactly its byte range, viewed as a torch
tensor; nothing is read until touched, and the mapping goes away with the tensor, so peak
memory follows the largest tensor in use rather than the checkpoint. ``chunks`` walks a big
tensor in row blocks so whole-tensor scans never materialise a full-size temporary.
Tensors from an explicitly allowed pickle live in memory (``memory``). ``prefetch`` asks
the kernel to read the next layer's bytes while the current one is checked.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from conformance.safeheader import TensorInfo

TORCH_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
SAFETENSORS_NAMES = {v: k for k, v in TORCH_DTYPES.items()}
_STORAGE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
CHUNK_BYTES = 64 * 1024 * 1024
PREFETCH_BUFFER = 4 * 1024 * 1024


class TensorReader:
    def __init__(self, memory: dict[str, torch.Tensor] | None = None):
        self.memory = memory or {}
        self._buffer = bytearray(PREFETCH_BUFFER)

    def prefetch(self, infos) -> None:
        """Pull these byte ranges into the page cache now (called from a readahead thread, so
        disk reads overlap the checks; a plain read is used because fadvise(WILLNEED) did not
        overlap measurably). Uses one reusable buffer: no memory grows with the tensor size."""
        buffer = memoryview(self._buffer)
        for info in infos:
            if info.name in self.memory or not info.nbytes:
                continue
            try:
                with open(info.path, "rb", buffering=0) as f:
                    f.seek(info.start)
                    left = info.nbytes
                    while left > 0 and (n := f.readinto(buffer[: min(left, len(buffer))])):
                        left -= n
            except OSError:
                continue

    def get(self, info: TensorInfo) -> torch.Tensor:
        if info.name in self.memory:
            return self.memory[info.name]
        dtype = TORCH_DTYPES[info.dtype]
        if info.numel == 0:
            return torch.empty(info.shape, dtype=dtype)
        raw = np.memmap(info.path, dtype=_STORAGE[dtype.itemsize], mode="c", offset=info.start, shape=(info.numel,))
        return torch.from_numpy(raw).view(dtype).reshape(info.shape)

    def chunks(self, info: TensorInfo, chunk_bytes: int = CHUNK_BYTES) -> Iterator[torch.Tensor]:
        """The tensor flattened, in slices of about ``chunk_bytes``."""
        flat = self.get(info).reshape(-1)
        step = max(1, chunk_bytes // max(1, flat.element_size()))
        for i in range(0, flat.numel(), step):
            yield flat[i: i + step]
