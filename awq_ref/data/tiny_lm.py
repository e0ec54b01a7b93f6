"""A tiny Llama that has learnt some English, for comparisons whose perplexity must mean something.

The peer benchmark (tests/peers/test_peer_speed.py) runs AutoAWQ, llm-compressor and our AWQ on "a 4-layer
hidden-256 Llama". A randomly initialised one predicts nearly uniform tokens, so every
method's perplexity equals the vocabulary size and cannot rank anything. This module builds
the same shape (4 layers, hidden 256, intermediate 768, 4 heads, 2 KV heads, byte-level
vocabulary of 512) from ``awq_ref.data.tiny`` weights (which carry amplified norm channels, the
activation outliers AWQ exploits) and trains it briefly with AdamW on the calibration split
(five Austen novels; Pride and Prejudice stays held out). A few hundred steps take it from
perplexity ~512 to about 5 per byte on held-out text.

Built once, on one thread with a fixed seed (so it is the same on any machine with the same
torch), and cached as an fp32 safetensors folder with its tokenizer under the cache dir.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.atomic import atomic_directory, file_lock
from awq_harness.awq_ref.data.cache import cache_dir


@dataclass(frozen=True)
class TrainRecipe:
    hidden: int = 256
    intermediate: int = 768
    layers: int = 4
    steps: int = 300
    batch: int = 8
    seqlen: int = 256
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0

    @property
    def cache_name(self) -> str:
        return f"tiny-llama-austen-h{self.hidden}-i{self.intermediate}-l{self.layers}-s{self.steps}-v1"


BENCHMARK_RECIPE = TrainRecipe()


def tiny_lm_dir(recipe: TrainRecipe = BENCHMARK_RECIPE) -> Path:
    """The cached folder of the trained tiny model, built on first use (safe across processes)."""
    dest = cache_dir() / "models" / recipe.cache_name
    if (dest / "config.json").is_file():
        return dest
    with file_lock(cache_dir() / "models" / f".{recipe.cache_name}.lock"):
        if not (dest / "config.json").is_file():
            with atomic_directory(dest) as staging:
                _build(staging, recipe)
    return dest


def training_tokens(tokenizer) -> torch.Tensor:
    from awq_harness.awq_ref.data.corpus import calibration_texts

    text = "\n\n".join(calibration_texts())
    return torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)


def _learning_rate(step: int, recipe: TrainRecipe) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train(model, tokens: torch.Tensor, recipe: TrainRecipe) -> list[float]:
    """Next-token training on random ``seqlen`` slices of ``tokens``; returns the loss per step."""
    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(recipe.steps):
        starts = torch.randint(0, tokens.numel() - recipe.seqlen, (recipe.batch,), generator=gen)
        batch = torch.stack([tokens[s : s + recipe.seqlen] for s in starts.tolist()])
        for group in opt.param_groups:
            group["lr"] = _learning_rate(step, recipe)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _build(out: Path, recipe: TrainRecipe) -> None:
    from awq_harness.awq_ref.data.tiny import tiny_model, tiny_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenizer = tiny_tokenizer()
        model = tiny_model("llama", seed=recipe.seed, hidden=recipe.hidden,
                           intermediate=recipe.intermediate, layers=recipe.layers)
        losses = train(model, training_tokens(tokenizer), recipe)
    finally:
        torch.set_num_threads(threads)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"recipe": asdict(recipe), "first_loss": losses[0], "last_loss": losses[-1],
              "torch": torch.__version__}
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
