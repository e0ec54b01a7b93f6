"""The trained tiny Llama for peer comparisons: it learns, and its folder is a normal model folder."""
import json

import torch

from awq_harness.awq_ref.data.models import load_model, load_tokenizer
from awq_harness.awq_ref.data.tiny_lm import TrainRecipe, _learning_rate, tiny_lm_dir
from awq_harness.awq_ref.eval.perplexity import perplexity

SMALL = TrainRecipe(hidden=64, intermediate=128, layers=1, steps=40, batch=4, seqlen=64, lr=1e-2, warmup=5)


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [_learning_rate(step, SMALL) for step in range(SMALL.steps + 1)]
    assert rates[0] < rates[SMALL.warmup - 1] == SMALL.lr
    assert all(a >= b for a, b in zip(rates[SMALL.warmup:], rates[SMALL.warmup + 1:]))
    assert abs(rates[-1] - 0.1 * SMALL.lr) < 1e-9


def test_built_model_has_learnt_the_text(tmp_path, monkeypatch):
    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path))
    folder = tiny_lm_dir(SMALL)
    assert folder.parent == tmp_path / "models" and tiny_lm_dir(SMALL) == folder  # cached
    record = json.loads((folder / "training.json").read_text())
    assert record["last_loss"] < record["first_loss"] - 2.0
    model, tokenizer = load_model(folder), load_tokenizer(folder)
    ids = torch.tensor(tokenizer("It is a truth universally acknowledged, that a single man " * 8)["input_ids"])
    assert perplexity(model, ids, seqlen=64).ppl < 40  # the untrained model is near 512
