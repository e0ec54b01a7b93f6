"""Run the ``austen_ppl`` lm-eval task on an in-memory model, offline, with a throw-away cache.

lm-eval's ``loglikelihood_rolling`` (HFLM, ``utils.get_rolling_token_windows`` with
context_len=1) scores a document of N tokens t_0..t_{N-1} with windows of L = max_length:
  * window 0: input [prefix] + t_0..t_{L-2}, predicts t_0..t_{L-1}; the prefix is the BOS
    token (else EOS), so even the first token is scored;
  * window k >= 1: input t_{kL-1}..t_{(k+1)L-2}, predicts the next L tokens: every later
    window starts with one token of context only (the last token of the previous chunk);
  * a final partial chunk still uses a full L-token input, overlapping the previous one.
Metrics: word_perplexity = exp(-sum LL / words), words = len(re.split(r"\\s+", doc));
byte_perplexity = exp(-sum LL / bytes); bits_per_byte = -sum LL / (bytes ln 2).

``awq_ref.eval.perplexity`` instead cuts one token stream into disjoint windows of ``seqlen``
and scores tokens 2..seqlen of each, with no prefix token. The two definitions coincide
when every document fits one lm-eval window (N <= L): lm-eval's loglikelihood of the
document is then exactly our window NLL of [prefix] + t_0..t_{N-1} (one window of N + 1
tokens), negated. ``tests/awq_ref/eval/test_lm_eval_agreement.py`` checks that per document; for
long documents convert with the window rule above.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

TASK_NAME = "austen_ppl"
TEMPLATE = Path(__file__).with_name("austen_ppl.yaml")
OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class LmEvalResult:
    word_perplexity: float
    byte_perplexity: float
    bits_per_byte: float
    documents: int
    loglikelihoods: list[float] = field(default_factory=list)  # per document, in input order

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "loglikelihoods"}


def held_out_documents(max_documents: int | None = None) -> list[str]:
    """The held-out book (Pride and Prejudice) cut into chapters, in order."""
    from awq_harness.awq_ref.data.corpus import eval_text

    parts = re.split(r"\n\s*Chapter \d+\s*\n", eval_text())
    chapters = [p.strip() for p in parts[1:] if p.strip()]
    return chapters[:max_documents] if max_documents else chapters


def _write_task(folder: Path, documents: list[str]) -> None:
    data = folder / "austen_test.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents), encoding="utf-8")
    (folder / "austen_ppl.yaml").write_text(TEMPLATE.read_text().replace("DATA_FILE", str(data.resolve())))


@contextlib.contextmanager
def _offline_env(cache: Path):
    saved = {k: os.environ.get(k) for k in (*OFFLINE_ENV, "HF_DATASETS_CACHE")}
    os.environ.update(OFFLINE_ENV, HF_DATASETS_CACHE=str(cache))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _per_document_loglikelihoods(samples: list[dict]) -> list[float]:
    ordered = sorted(samples, key=lambda s: s["doc_id"])
    return [float(s["word_perplexity"][0]) for s in ordered]


def lm_eval_perplexity(model, tokenizer, documents: list[str], max_length: int = 512,
                       batch_size: int = 1, quiet: bool = True) -> LmEvalResult:
    """lm-eval's rolling perplexity of ``documents`` under ``model`` (in memory, offline)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="awq-lm-eval-") as tmp:
        tmp = Path(tmp)
        _write_task(tmp, documents)
        with _offline_env(tmp / "datasets"), _quiet(quiet):
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length)
            # include_defaults=False: indexing all of lm-eval's built-in task files costs seconds a call
            tasks = TaskManager(include_path=str(tmp), include_defaults=False)
            out = lm_eval.simple_evaluate(model=lm, tasks=[TASK_NAME], task_manager=tasks, log_samples=True,
                                          bootstrap_iters=0)
    metrics = out["results"][TASK_NAME]
    return LmEvalResult(word_perplexity=float(metrics["word_perplexity,none"]),
                        byte_perplexity=float(metrics["byte_perplexity,none"]),
                        bits_per_byte=float(metrics["bits_per_byte,none"]), documents=len(documents),
                        loglikelihoods=_per_document_loglikelihoods(out["samples"][TASK_NAME]))


@contextlib.contextmanager
def _quiet(enabled: bool):
    if not enabled:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)
