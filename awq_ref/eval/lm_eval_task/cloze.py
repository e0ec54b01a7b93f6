"""A last-word cloze task on held-out text, shipped as the lm-eval task ``heldout_cloze``.

LAMBADA's construction (Paperno et al. 2016): passages whose last word the model must predict
from the passage before it; accuracy is the share of passages where greedy decoding produces
exactly that word (lm-eval's ``loglikelihood`` ``acc``: every target token is the argmax),
and ``perplexity`` is exp(-mean log-likelihood of the target). The accuracy's interval is the
seeded percentile bootstrap over passages of ``awq_ref.eval.metrics`` (``mean_interval``). LAMBADA kept passages where
humans needed the whole passage, not only the last sentence; with no annotators, our filter is
an automatic proxy that also needs context: the target word occurs earlier in the passage.

Passages (``cloze_passages``), deterministic, in text order: each paragraph of the held-out
split of a domain (``awq_ref.data.corpus``), newlines as spaces, trailing punctuation and
quotes removed, of ``MIN_WORDS`` .. ``MAX_WORDS`` words, whose last word is alphabetic, at
least ``MIN_TARGET`` letters long, and appears (same case) earlier in the passage. Context:
the passage up to the last word (no trailing space); target: a space and the word.

Scored on an in-memory model, offline, like the ``austen_ppl`` perplexity task (``runner``).
"""
from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from awq_harness.awq_ref.eval.lm_eval_task.runner import _offline_env, _quiet
from awq_harness.awq_ref.eval.metrics import mean_interval

TASK_NAME = "heldout_cloze"
TEMPLATE = Path(__file__).with_name("cloze.yaml")
MIN_WORDS, MAX_WORDS, MIN_TARGET = 40, 200, 3
TRAILING = " \t.,;:!?\"'()[]-_*\u201c\u201d\u2018\u2019"


@dataclass(frozen=True)
class ClozeResult:
    accuracy: float
    perplexity: float
    passages: int
    accuracy_ci: tuple[float, float] = (math.nan, math.nan)

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "perplexity": self.perplexity, "passages": self.passages,
                "accuracy_ci": list(self.accuracy_ci)}


def passage(paragraph: str) -> dict | None:
    text = paragraph.replace("\n", " ").strip().rstrip(TRAILING)
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    target = words[-1]
    if not (target.isalpha() and len(target) >= MIN_TARGET):
        return None
    context = text[: len(text) - len(target)].rstrip()
    if not re.search(rf"\b{re.escape(target)}\b", context):
        return None
    return {"context": context, "target": " " + target}


def cloze_passages(domain: str = "austen", limit: int | None = None) -> list[dict]:
    from awq_harness.awq_ref.data.corpus import eval_text

    found = [p for p in (passage(par) for par in eval_text(domain).split("\n\n")) if p]
    return found[:limit] if limit else found


def lm_eval_cloze(model, tokenizer, passages: list[dict], max_length: int = 512, batch_size: int = 1,
                  quiet: bool = True) -> ClozeResult:
    """lm-eval's accuracy and target perplexity of ``passages`` under ``model`` (in memory, offline)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="awq-cloze-") as tmp:
        tmp = Path(tmp)
        data = tmp / "cloze_test.jsonl"
        data.write_text("".join(json.dumps(p) + "\n" for p in passages), encoding="utf-8")
        (tmp / "cloze.yaml").write_text(TEMPLATE.read_text().replace("DATA_FILE", str(data.resolve())))
        with _offline_env(tmp / "datasets"), _quiet(quiet):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
            tasks = TaskManager(include_path=str(tmp), include_defaults=False)
            out = lm_eval.simple_evaluate(model=lm, tasks=[TASK_NAME], task_manager=tasks, bootstrap_iters=0)
    hits = torch.tensor([float(sample["acc"]) for sample in out["samples"][TASK_NAME]])
    found = out["results"][TASK_NAME]
    return ClozeResult(float(found["acc,none"]), float(found["perplexity,none"]), len(passages),
                       tuple(mean_interval(hits)))
