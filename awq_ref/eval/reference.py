"""The float model's next-token distributions on the evaluation windows, computed once and cached.

KL divergence needs the float model's full distribution at every predicted token. Running the
float model again for each quantised variant would double every evaluation, so its
log-probabilities are stored once per (model folder and its weights' sizes and times, dtype,
exact window token ids) in ``<cache>/float-logits/<key>.safetensors``:

    logp   [n, t, V] float16   log-softmax of the float logits (t = seqlen - 1 predicted tokens)
    top1   [n, t]    int64     argmax of the float32 logits (not of the rounded log-probs)
    nll    [n]       float64   summed NLL of each window (the float row's perplexity)
    floor  [n, t]    float32   KL(cached || float32): what storing in float16 costs, the float
                               row's KL divergence (the floor any quantised row sits on)

float16 keeps log-probabilities to about 1e-3 relative; read back, they are renormalised
(log-softmax again), so the rounded P is still a distribution and a rounding shared by all
tokens cancels. ``floor`` says what the rest costs. The file is written atomically (a temporary
file renamed into place) under a lock, so parallel evaluations build it once; it is read one
batch of windows at a time (memory-mapped).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from awq_harness.awq_ref.checkpoint.atomic import file_lock
from awq_harness.awq_ref.data.cache import cache_dir
from awq_harness.awq_ref.eval.metrics import TokenScores
from awq_harness.awq_ref.eval.perplexity import next_token_nll
from awq_harness.awq_ref.primitives.device import device_of

STORED_DTYPE = torch.float16


TOKENS_PER_CHUNK = 32  # a [32, V] float32 block stays in cache: about 4x faster than whole windows


def kl_and_top1(logits: torch.Tensor, ref_logp: torch.Tensor, ref_top1: torch.Tensor):
    """Per-token KL(reference || model) and top-1 agreement from the model's logits [b, T, V].
    Every token is its own row, so computing them a few tokens at a time gives the same bits."""
    kld, agree = [], []
    for start in range(0, ref_logp.shape[1], TOKENS_PER_CHUNK):
        stop = min(start + TOKENS_PER_CHUNK, ref_logp.shape[1])
        logq = torch.log_softmax(logits[:, start:stop].float(), dim=-1)
        logp = torch.log_softmax(ref_logp[:, start:stop].float(), dim=-1)  # renormalised: P stays a distribution
        kld.append((logp.exp() * (logp - logq)).sum(dim=-1))
        agree.append(logq.argmax(dim=-1) == ref_top1[:, start:stop])
    return torch.cat(kld, dim=1), torch.cat(agree, dim=1)


@dataclass(frozen=True)
class FloatReference:
    path: Path

    def _get(self, name: str, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        with safe_open(str(self.path), framework="pt") as f:
            return f.get_slice(name)[start:stop] if start is not None else f.get_tensor(name)

    def logp(self, start: int, stop: int) -> torch.Tensor:
        return self._get("logp", start, stop)

    def top1(self) -> torch.Tensor:
        return self._get("top1")

    def float_scores(self) -> TokenScores:
        """The float model's own row: its NLL, the float16 floor as KL, top-1 agreement 1."""
        floor = self._get("floor")
        return TokenScores(self._get("nll"), floor.shape[1], floor, torch.ones(floor.shape, dtype=torch.bool))


@torch.no_grad()
def build_reference(model: nn.Module, windows: torch.Tensor, path: Path, batch_size: int = 1) -> FloatReference:
    logp, top1, nll, floor, device = [], [], [], [], device_of(model)
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(device)
        logits = model(input_ids=batch).logits
        full = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        stored = full.to(STORED_DTYPE)
        nll.append(next_token_nll(logits, batch).cpu())
        top1.append(full.argmax(dim=-1))
        floor.append(kl_and_top1(logits, stored, top1[-1])[0].cpu())
        logp.append(stored.cpu())
        top1[-1] = top1[-1].cpu()
    tensors = {"logp": torch.cat(logp), "top1": torch.cat(top1), "nll": torch.cat(nll), "floor": torch.cat(floor)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return FloatReference(path)


def reference_key(model_dir: Path, windows: torch.Tensor, dtype: torch.dtype) -> str:
    """Changes with the folder, its weight files (size, mtime), the dtype and the window tokens."""
    h = hashlib.sha256(f"{Path(model_dir).resolve()}|{dtype}|{tuple(windows.shape)}".encode())
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(windows.to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:32]


def cached_reference(model_dir: Path, windows: torch.Tensor, dtype: torch.dtype, load, batch_size: int = 1):
    """The cached reference, built with ``load()`` (the float model in ``dtype``) when missing."""
    path = cache_dir() / "float-logits" / f"{reference_key(model_dir, windows, dtype)}.safetensors"
    if not path.is_file():
        with file_lock(path.with_suffix(".lock")):
            if not path.is_file():
                return build_reference(load(), windows, path, batch_size), True
    return FloatReference(path), False


@torch.no_grad()
def score_windows(model: nn.Module, windows: torch.Tensor, reference: FloatReference | None = None,
                  batch_size: int = 1) -> tuple[TokenScores, float]:
    """One pass over the windows: per-window NLL and, against ``reference``, per-token KL and
    top-1 agreement; also the NLL total summed batch by batch (as ``perplexity`` sums it)."""
    ref_top1 = reference.top1() if reference is not None else None
    nll, kld, top1, total, device = [], [], [], 0.0, device_of(model)
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size].to(device)
        logits = model(input_ids=batch).logits
        nll.append(next_token_nll(logits, batch).cpu())  # per-window sums: the scores live on the CPU
        total += float(nll[-1].sum())
        if reference is not None:
            stop = start + len(batch)
            k, agree = kl_and_top1(logits, reference.logp(start, stop).to(device), ref_top1[start:stop].to(device))
            kld.append(k.cpu())
            top1.append(agree.cpu())
    predicted = windows.shape[1] - 1
    if reference is None:
        return TokenScores(torch.cat(nll), predicted), total
    return TokenScores(torch.cat(nll), predicted, torch.cat(kld), torch.cat(top1)), total
