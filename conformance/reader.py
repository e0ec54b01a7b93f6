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

from awq_harness.conformance.safeheader import TensorInfo

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
SAMPLE_WINDOWS = 4  # remote: windows checked per tensor by the whole-tensor scans
SAMPLE_BYTES = 64 * 1024


class TensorReader:
    def __init__(self, memory: dict[str, torch.Tensor] | None = None, remote=None):
        self.memory = memory or {}
        self.remote = remote  # conformance.remote.RemoteFiles: sparse cache files, fetched on demand
        self._buffer = bytearray(PREFETCH_BUFFER)

    def prefetch(self, infos) -> None:
        """Pull these byte ranges into the page cache now (called from a readahead thread, so
        disk reads overlap the checks; a plain read is used because fadvise(WILLNEED) did not
        overlap measurably). Uses one reusable buffer: no memory grows with the tensor size."""
        if self.remote is not None:
            return  # remote bytes are fetched only where a check reads them
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

    def get(self, info: TensorInfo, fetch: bool = True) -> torch.Tensor:
        """The tensor; from a remote checkpoint its bytes are fetched first, unless ``fetch`` is
        False (the caller then fetches the part it reads with ``fetch_view``)."""
        if info.name in self.memory:
            return self.memory[info.name]
        dtype = TORCH_DTYPES[info.dtype]
        if self.remote is not None and fetch:
            self.remote.ensure(info.path, info.start, info.nbytes)
        if info.numel == 0:
            return torch.empty(info.shape, dtype=dtype)
        raw = np.memmap(info.path, dtype=_STORAGE[dtype.itemsize], mode="c", offset=info.start, shape=(info.numel,))
        return torch.from_numpy(raw).view(dtype).reshape(info.shape)

    def fetch_view(self, info: TensorInfo, view: torch.Tensor) -> None:
        """Fetch (remote only) the leading bytes of ``info`` that cover ``view``, a view of
        ``get(info, fetch=False)``."""
        if self.remote is None or not view.numel():
            return
        last = view.storage_offset() + sum((n - 1) * s for n, s in zip(view.shape, view.stride()))
        self.remote.ensure(info.path, info.start, min(info.nbytes, (last + 1) * view.element_size()))

    def chunks(self, info: TensorInfo, chunk_bytes: int = CHUNK_BYTES) -> Iterator[torch.Tensor]:
        """The tensor flattened, in slices of about ``chunk_bytes``; from a remote checkpoint,
        SAMPLE_WINDOWS evenly spaced windows of SAMPLE_BYTES each (all of a small tensor)."""
        flat = self.get(info, fetch=self.remote is None).reshape(-1)
        size = max(1, flat.element_size())
        if self.remote is not None:
            step = max(1, SAMPLE_BYTES // size)
            starts = sorted({i * (flat.numel() - step) // max(1, SAMPLE_WINDOWS - 1) for i in range(SAMPLE_WINDOWS)}
                            if flat.numel() > step * SAMPLE_WINDOWS else range(0, flat.numel(), step))
            for i in starts:
                self.remote.ensure(info.path, info.start + i * size, min(step, flat.numel() - i) * size)
                yield flat[i: i + step]
            return
        step = max(1, chunk_bytes // size)
        for i in range(0, flat.numel(), step):
            yield flat[i: i + step]
