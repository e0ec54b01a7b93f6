"""Perplexity rows for the float model, in-memory quantised variants and saved checkpoints.

In-memory variants are fake-quantised by the method's own step over the layer loop
(``awq_ref.pipeline.quantize``: weights replaced by (q - z) * s with fp16 scales), which gives
the same numbers as the packed checkpoint and works for any bit width.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from awq_ref.checkpoint.awq import load_checkpoint, read_config
from awq_ref.data.corpus import eval_text
from awq_ref.data.models import load_model, load_tokenizer
from awq_ref.eval.perplexity import Perplexity, perplexity, tokenize_text
from awq_ref.methods.registry import QuantizeRequest, get_method
from awq_ref.pipeline.quantize import quantize_model
from awq_ref.primitives.device import CPU


@dataclass(frozen=True)
class EvalSettings:
    windows: int = 16
    seqlen: int = 512
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    device: torch.device = CPU  # where the models are quantised and scored (``primitives.device``)


@dataclass(frozen=True)
class EvalRow:
    label: str
    method: str
    bits: int | None
    group_size: int | None
    result: Perplexity
    seconds: float

    def to_json(self) -> dict:
        return {"label": self.label, "method": self.method, "bits": self.bits, "group_size": self.group_size,
                "seconds": round(self.seconds, 3), **self.result.to_json()}


def method_tokenizer(model_name: str, method: str):
    """The model's tokenizer if ``method`` draws calibration data from it, else None."""
    return load_tokenizer(model_name) if get_method(method).calibrated else None


def eval_tokens(model: str) -> torch.Tensor:
    return tokenize_text(load_tokenizer(model), eval_text())


def _score(model, tokens, settings: EvalSettings) -> tuple[Perplexity, float]:
    started = time.perf_counter()
    result = perplexity(model.to(settings.device), tokens, settings.seqlen, settings.windows, settings.batch_size)
    return result, time.perf_counter() - started


def evaluate_float(model_name: str, tokens, settings: EvalSettings) -> EvalRow:
    result, seconds = _score(load_model(model_name, settings.dtype), tokens, settings)
    return EvalRow("fp", "fp", None, None, result, seconds)


def evaluate_method(model_name: str, method: str, request: QuantizeRequest, tokens,
                    settings: EvalSettings) -> EvalRow:
    model = load_model(model_name, torch.float32)
    started = time.perf_counter()
    quantize_model(model, method, replace(request, version=None), method_tokenizer(model_name, method),
                   device=settings.device)
    quant_seconds = time.perf_counter() - started
    result, seconds = _score(model.to(settings.dtype), tokens, settings)
    spec = request.spec
    return EvalRow(f"{method} w{spec.bits} g{spec.group_size}", method, spec.bits, spec.group_size,
                   result, seconds + quant_seconds)


def evaluate_checkpoint(folder: str | Path, tokens, settings: EvalSettings) -> EvalRow:
    q = read_config(Path(folder))["quantization_config"]
    result, seconds = _score(load_checkpoint(folder, settings.dtype), tokens, settings)
    return EvalRow(str(folder), "checkpoint", q.get("bits"), q.get("group_size"), result, seconds)
