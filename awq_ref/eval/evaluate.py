"""Evaluation rows for the float model, in-memory quantised variants and saved checkpoints.

In-memory variants are fake-quantised by the method's own step over the layer loop
(``awq_ref.pipeline.quantize``: weights replaced by (q - z) * s with fp16 scales), which gives
the same numbers as the packed checkpoint and works for any bit width.

Every row has the perplexity and its bootstrap interval over windows (``awq_ref.eval.metrics``).
With ``kld`` or ``top1`` in ``EvalSettings.metrics`` the same forward also scores each token
against the float model's cached distributions (``awq_ref.eval.reference``): built once per
model and settings, on first use, and read back for every quantised row.

With ``EvalSettings.cloze`` > 0 each row's model is also scored on the first that many passages
of the last-word cloze task of the evaluation text (``awq_ref.eval.lm_eval_task.cloze``): lm-eval's
accuracy, with a bootstrap interval over passages.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint, read_config
from awq_harness.awq_ref.data.corpus import DEFAULT_DOMAIN, eval_text
from awq_harness.awq_ref.data.models import load_model, load_tokenizer, resolve_model_dir
from awq_harness.awq_ref.eval import metrics
from awq_harness.awq_ref.eval.lm_eval_task.cloze import ClozeResult, cloze_passages, lm_eval_cloze
from awq_harness.awq_ref.eval.metrics import TokenScores
from awq_harness.awq_ref.eval.perplexity import Perplexity, make_windows, tokenize_text
from awq_harness.awq_ref.eval.reference import cached_reference, score_windows
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method
from awq_harness.awq_ref.model.dtype import cast_model
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.device import CPU

METRICS = ("ppl", "kld", "top1")


@dataclass(frozen=True)
class EvalSettings:
    windows: int = 16
    seqlen: int = 512
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    device: torch.device = CPU  # where the models are quantised and scored (``primitives.device``)
    metrics: tuple[str, ...] = ("ppl",)
    domain: str = DEFAULT_DOMAIN
    cloze: int = 0  # cloze passages scored per row (0: none)

    @property
    def against_float(self) -> bool:
        return "kld" in self.metrics or "top1" in self.metrics


@dataclass(frozen=True)
class EvalRow:
    label: str
    method: str
    bits: int | None
    group_size: int | None
    result: Perplexity
    seconds: float
    scores: TokenScores | None = field(default=None, repr=False, compare=False)
    cloze: ClozeResult | None = None

    def quality(self) -> dict:
        """Point estimates beyond perplexity, and every statistic's bootstrap interval."""
        if self.scores is None:
            return {}
        out = metrics.point_estimates(self.scores)
        return out | {"ci": metrics.intervals(self.scores),
                      "bootstrap": {"resamples": metrics.RESAMPLES, "seed": metrics.SEED, "level": metrics.LEVEL,
                                    "unit": "window"}}

    def to_json(self) -> dict:
        return {"label": self.label, "method": self.method, "bits": self.bits, "group_size": self.group_size,
                "seconds": round(self.seconds, 3), **self.result.to_json(), **self.quality(),
                **({"cloze": self.cloze.to_json()} if self.cloze else {})}


def method_tokenizer(model_name: str, method: str):
    """The model's tokenizer if ``method`` draws calibration data from it, else None."""
    return load_tokenizer(model_name) if get_method(method).calibrated else None


def eval_tokens(model: str, domain: str = DEFAULT_DOMAIN) -> torch.Tensor:
    return tokenize_text(load_tokenizer(model), eval_text(domain))


def _perplexity(scores: TokenScores, total: float, seqlen: int) -> Perplexity:
    tokens = scores.windows * scores.predicted
    return Perplexity(math.exp(total / tokens), total, tokens, scores.windows, seqlen)


def _reference(model_name: str, windows: torch.Tensor, settings: EvalSettings, model=None):
    def load():
        return (model if model is not None else load_model(model_name, settings.dtype)).to(settings.device)

    return cached_reference(resolve_model_dir(str(model_name)), windows, settings.dtype, load, settings.batch_size)


def _score(model, tokens, settings: EvalSettings, reference=None) -> tuple[Perplexity, TokenScores, float]:
    started = time.perf_counter()
    windows = make_windows(tokens, settings.seqlen, settings.windows)
    scores, total = score_windows(model.to(settings.device), windows, reference, settings.batch_size)
    return _perplexity(scores, total, settings.seqlen), scores, time.perf_counter() - started


def _cloze(model, tokenizer_source: str | Path | None, settings: EvalSettings) -> ClozeResult | None:
    if not settings.cloze:
        return None
    return lm_eval_cloze(model.to(settings.device), load_tokenizer(tokenizer_source),
                         cloze_passages(settings.domain, settings.cloze), batch_size=settings.batch_size)


def evaluate_float(model_name: str, tokens, settings: EvalSettings) -> EvalRow:
    if not settings.against_float:
        model = load_model(model_name, settings.dtype)
        result, scores, seconds = _score(model, tokens, settings)
        return EvalRow("fp", "fp", None, None, result, seconds, scores, _cloze(model, model_name, settings))
    started = time.perf_counter()
    windows = make_windows(tokens, settings.seqlen, settings.windows)
    reference, _ = _reference(model_name, windows, settings)
    scores = reference.float_scores()
    total = sum(float(v.sum()) for v in scores.nll.split(settings.batch_size))
    cloze = _cloze(load_model(model_name, settings.dtype), model_name, settings) if settings.cloze else None
    return EvalRow("fp", "fp", None, None, _perplexity(scores, total, settings.seqlen),
                   time.perf_counter() - started, scores, cloze)


def evaluate_method(model_name: str, method: str, request: QuantizeRequest, tokens,
                    settings: EvalSettings) -> EvalRow:
    reference = None
    if settings.against_float:  # before quantising: a missing reference is built from the float model
        reference, _ = _reference(model_name, make_windows(tokens, settings.seqlen, settings.windows), settings)
    model = load_model(model_name, torch.float32)
    started = time.perf_counter()
    quantize_model(model, method, replace(request, version=None), method_tokenizer(model_name, method),
                   device=settings.device)
    quant_seconds = time.perf_counter() - started
    result, scores, seconds = _score(cast_model(model, settings.dtype), tokens, settings, reference)
    spec = request.spec
    return EvalRow(method_label(method, request), method, spec.bits, spec.group_size,
                   result, seconds + quant_seconds, scores, _cloze(model, model_name, settings))


def method_label(method: str, request: QuantizeRequest) -> str:
    label = f"{method} w{request.spec.bits} g{request.spec.group_size}"
    return label if request.calib_domain == DEFAULT_DOMAIN or not get_method(method).calibrated \
        else f"{label} calib:{request.calib_domain}"


def evaluate_checkpoint(folder: str | Path, tokens, settings: EvalSettings, model_name: str | None = None) -> EvalRow:
    q = read_config(Path(folder))["quantization_config"]
    reference = None
    if settings.against_float and model_name is not None:
        reference, _ = _reference(model_name, make_windows(tokens, settings.seqlen, settings.windows), settings)
    model = load_checkpoint(folder, settings.dtype)
    result, scores, seconds = _score(model, tokens, settings, reference)
    cloze = _cloze(model, model_name if model_name is not None else folder, settings)
    return EvalRow(str(folder), "checkpoint", q.get("bits"), q.get("group_size"), result, seconds, scores, cloze)
