"""Shared set-up of the perplexity-ordering tests on the default model (not a test module)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from awq_harness.awq_ref.data.models import DEFAULT_GROUP_SIZE
from awq_harness.awq_ref.eval.evaluate import EvalSettings, eval_tokens, evaluate_float, evaluate_method
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.primitives.compute_dtype import choose
from awq_harness.awq_ref.primitives.quant import QuantSpec

MODEL = "default"
RESULTS_DIR_ENV = "AWQ_HARNESS_RESULTS_DIR"  # where the tests also write their JSON


@dataclass(frozen=True)
class Setting:
    calib_samples: int
    calib_seqlen: int
    windows: int
    calib_dtype: str = "auto"  # of the AWQ / GPTQ searches; auto: bf16 only where this CPU has it natively
    eval_dtype: str = "auto"
    seed: int = 0
    loss_blocks: int | None = None  # AWQ's scale-search loss on this many blocks (None: all, as AutoAWQ)

    def request(self, bits: int) -> QuantizeRequest:
        dtype = choose(self.calib_dtype).dtype
        return QuantizeRequest(
            QuantSpec(bits, DEFAULT_GROUP_SIZE),
            None,
            self.calib_samples,
            self.calib_seqlen,
            self.seed,
            awq=AwqSearchConfig(compute_dtype=dtype, loss_blocks=self.loss_blocks),
            gptq=GptqConfig(compute_dtype=dtype),
        )

    def eval_settings(self) -> EvalSettings:
        return EvalSettings(windows=self.windows, seqlen=512, dtype=choose(self.eval_dtype).torch_dtype)

    def resolved(self) -> dict:
        """The setting with the dtypes ``auto`` chose on this machine, for results files."""
        return self.__dict__ | {
            "calib_dtype": choose(self.calib_dtype).dtype,
            "eval_dtype": choose(self.eval_dtype).dtype,
        }


def float_row(setting: Setting, tokens):
    return evaluate_float(MODEL, tokens, setting.eval_settings())


def method_row(setting: Setting, method: str, bits: int, tokens):
    return evaluate_method(MODEL, method, setting.request(bits), tokens, setting.eval_settings())


def tokens():
    return eval_tokens(MODEL)


def record(section: str, payload: dict) -> None:
    """Into the report collector when ``reports`` is there (it checks the payload either way)."""
    try:
        from awq_harness.reports.collect import record as collect
    except ImportError:
        return
    collect(section, payload)


def perplexity_payload(row, setting: Setting, evaluator: str = "awq_harness.awq_ref.eval.perplexity") -> dict:
    return {
        "model": MODEL,
        "method": row.method,
        "bits": row.bits or 16,
        "group_size": row.group_size or 0,
        "ppl": row.result.ppl,
        "evaluator": evaluator,
        "dataset": "austen-prideprejudice",
        "windows": setting.windows,
        "calib_samples": setting.calib_samples,
        "calib_seqlen": setting.calib_seqlen,
        "calib_dtype": choose(setting.calib_dtype).dtype,
        "seconds": round(row.seconds, 1),
    }


def write_json(name: str, payload) -> Path | None:
    folder = os.environ.get(RESULTS_DIR_ENV)
    if not folder:
        return None
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
