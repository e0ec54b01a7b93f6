"""Greedy decode speed of a quantised model through the kernels against its fp16 original.

A decode record (the ``decode`` list of the results JSON):

    model, group_size, prompt_tokens, new_tokens, tokens_per_s (quantised, through the
    kernels), fp16_tokens_per_s, speedup, device, dry_run

Both models generate exactly ``new_tokens`` tokens greedily after one warm-up generation;
the clock (perf_counter around a device sync) covers prefill plus decode, as users see it.
The quantised model runs through whichever forward its layers choose: call ``decode_record``
inside ``awq_ref.modules.qlinear.kernel_backend("triton")`` to time it through the kernels.
"""
from __future__ import annotations

import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def tokens_per_s(model, ids: torch.Tensor, new_tokens: int) -> float:
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    model.generate(ids, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
    _sync(ids.device)
    start = time.perf_counter()
    model.generate(ids, **kwargs)
    _sync(ids.device)
    return new_tokens / (time.perf_counter() - start)


def decode_record(name: str, group_size: int, quantised, fp16, ids: torch.Tensor, new_tokens: int,
                  device: str, dry_run: bool) -> dict:
    quantised_speed = tokens_per_s(quantised, ids, new_tokens)
    fp16_speed = tokens_per_s(fp16, ids, new_tokens)
    return {"model": name, "group_size": group_size, "prompt_tokens": ids.shape[1], "new_tokens": new_tokens,
            "tokens_per_s": quantised_speed, "fp16_tokens_per_s": fp16_speed,
            "speedup": quantised_speed / fp16_speed, "device": device, "dry_run": dry_run}
