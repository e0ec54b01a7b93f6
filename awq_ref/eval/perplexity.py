"""Perplexity of a causal LM on the held-out split, with a documented windowing.

Windowing (the llm-awq / AutoAWQ ``evaluate_perplexity`` protocol, with our split):
  1. tokenize the whole held-out text once, adding no special tokens;
  2. cut the token stream into non-overlapping windows of ``seqlen`` tokens from the
     start, dropping the incomplete remainder; keep the first ``n_windows``;
  3. score each window on its own (no context carried over): the model predicts tokens
     2..seqlen of the window from their prefix inside it;
  4. PPL = exp(sum of token NLLs / number of predicted tokens), NLL in float32.
Because every window has the same length, this equals llm-awq's exp(mean window loss),
but we divide by the seqlen - 1 tokens actually predicted, not seqlen.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from awq_harness.awq_ref.primitives.device import device_of


@dataclass(frozen=True)
class Perplexity:
    ppl: float
    nll_sum: float
    tokens: int
    windows: int
    seqlen: int

    def to_json(self) -> dict:
        return asdict(self)


def tokenize_text(tokenizer, text: str) -> torch.Tensor:
    """The text as one 1-D stream of token ids, with no special tokens."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def make_windows(token_ids: torch.Tensor, seqlen: int, n_windows: int | None = None) -> torch.Tensor:
    available = token_ids.numel() // seqlen
    if available == 0:
        raise ValueError(f"the text has {token_ids.numel()} tokens, fewer than one window of {seqlen}")
    n = available if n_windows is None else n_windows
    if n > available:
        raise ValueError(f"asked for {n} windows of {seqlen} tokens; the text has only {available}")
    return token_ids[: n * seqlen].reshape(n, seqlen)


@torch.no_grad()
def window_nll(model: nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Summed next-token NLL of each window: [n] float64 (on the device of the model's weights)."""
    windows = windows.to(device_of(model))
    return next_token_nll(model(input_ids=windows).logits, windows)


def next_token_nll(logits: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Summed NLL of tokens 2..T of each window given logits [n, T, V]: [n] float64."""
    logits = logits[:, :-1].float()
    n, t, vocab = logits.shape
    # [tokens, vocab] rows: cross_entropy on the [B, V, T] layout loses up to 2e-4 nats a token
    nll = nn.functional.cross_entropy(logits.reshape(n * t, vocab), windows[:, 1:].reshape(-1), reduction="none")
    return nll.reshape(n, t).double().sum(dim=1)


def perplexity(model: nn.Module, token_ids: torch.Tensor, seqlen: int = 512,
               n_windows: int | None = None, batch_size: int = 1, on_batch=None) -> Perplexity:
    windows = make_windows(token_ids, seqlen, n_windows)
    total = 0.0
    for start in range(0, len(windows), batch_size):
        total += float(window_nll(model, windows[start : start + batch_size]).sum())
        if on_batch:
            on_batch(min(start + batch_size, len(windows)))
    tokens = len(windows) * (seqlen - 1)
    return Perplexity(math.exp(total / tokens), total, tokens, len(windows), seqlen)
