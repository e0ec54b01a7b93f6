"""The GPU tier's work, one function per measurement, run the same way on a GPU (the default
model, real sizes) and in the CPU dry mode (a tiny seeded Llama, tiny sizes, the interpreter).

    perplexity_rows   quantise a copy of the float model with AWQ, GPTQ and RTN at each bit width
                      on ``device`` (``awq_ref.pipeline.quantize.quantize_model``, fake-quantised
                      in place), score it on the held-out windows, one row per variant
    order_failures    FP < AWQ < RTN and GPTQ < RTN at every bit width
    gap_rows          AWQ - GPTQ and RTN - AWQ per bit width (the AWQ-vs-GPTQ gap)
    band_failures     each perplexity against this GPU's baseline (``reports.compare``'s rule)
    decode_rows       greedy decode tokens/s through the kernels for the AWQ GEMM and GEMV
                      layouts, each against the fp16 model

Rows are the report's own (``perplexity`` and ``decode_speed`` sections of ``reports.collect``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from awq_harness.awq_ref.eval.perplexity import perplexity
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.modules.qlinear import kernel_backend
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.kernels.bench.decode import decode_record
from awq_harness.reports.compare import Thresholds, compare
from awq_harness.reports.schema import Results, build_document

METHODS = ("awq", "gptq", "rtn")
EVALUATOR = "gpu-tier"


@dataclass(frozen=True)
class GapSetting:
    model: str
    group_size: int
    calib_samples: int
    calib_seqlen: int
    windows: int
    seqlen: int
    bits: tuple[int, ...] = (4, 3)

    def request(self, bits: int) -> QuantizeRequest:
        return QuantizeRequest(QuantSpec(bits, self.group_size), None, self.calib_samples, self.calib_seqlen,
                               awq=AwqSearchConfig(compute_dtype="float32"))


def _row(setting: GapSetting, method: str, bits: int | None, ppl: float, device: str, dry_run: bool) -> dict:
    return {"model": setting.model, "method": method, "bits": bits or 16, "group_size": setting.group_size,
            "ppl": ppl, "evaluator": EVALUATOR, "dataset": "held-out", "device": device, "dry_run": dry_run}


@torch.no_grad()
def _score(model, eval_ids: torch.Tensor, setting: GapSetting, device: str) -> float:
    return perplexity(model, eval_ids.to(device), setting.seqlen, setting.windows).ppl


def perplexity_rows(float_model, calib_ids: torch.Tensor, eval_ids: torch.Tensor, setting: GapSetting,
                    device: str, device_name: str, dry_run: bool) -> list[dict]:
    rows = [_row(setting, "fp", None, _score(copy.deepcopy(float_model).to(device), eval_ids, setting, device),
                 device_name, dry_run)]
    for bits in setting.bits:
        for method in METHODS:
            model = copy.deepcopy(float_model).to(device)
            quantize_model(model, method, setting.request(bits), None if method == "rtn" else calib_ids)
            rows.append(_row(setting, method, bits, _score(model, eval_ids, setting, device), device_name, dry_run))
    return rows


def _ppl(rows: list[dict], method: str, bits: int) -> float:
    (row,) = [r for r in rows if r["method"] == method and r["bits"] == (16 if method == "fp" else bits)]
    return row["ppl"]


def order_failures(rows: list[dict], bits: tuple[int, ...]) -> list[str]:
    failures = []
    for b in bits:
        fp, awq, gptq, rtn = (_ppl(rows, m, b) for m in ("fp", "awq", "gptq", "rtn"))
        if not fp < awq < rtn:
            failures.append(f"w{b}: not FP < AWQ < RTN (fp {fp:.4f}, awq {awq:.4f}, rtn {rtn:.4f})")
        if not gptq < rtn:
            failures.append(f"w{b}: not GPTQ < RTN (gptq {gptq:.4f}, rtn {rtn:.4f})")
    return failures


def gap_rows(rows: list[dict], bits: tuple[int, ...]) -> list[dict]:
    return [{"bits": b, "awq_minus_gptq": _ppl(rows, "awq", b) - _ppl(rows, "gptq", b),
             "rtn_minus_awq": _ppl(rows, "rtn", b) - _ppl(rows, "awq", b)} for b in bits]


def as_run(device: str, sections: dict[str, list[dict]]) -> Results:
    run = {"date": "", "git_commit": None, "host": "", "device": device, "versions": {}}
    document = build_document(run, [], sections)
    return Results("<this session>", document["run"], document["tests"], document["sections"])


def band_failures(rows: list[dict], baseline: Results | None, device: str,
                  thresholds: Thresholds | None = None) -> list[str]:
    """Why the rows fail this GPU's baseline: none for this GPU, a row it lacks, or a
    perplexity more than ``ppl_delta`` above its baseline (the report's own rule)."""
    if baseline is None:
        return [f"no perplexity baseline for {device}; write one with AWQ_GPU_BASELINE_WRITE=1, review, commit"]
    comparison = compare(as_run(device, {"perplexity": rows}), baseline, thresholds or Thresholds())
    failures = [f"{row.subject}: {row.current} against {row.baseline} ({row.change})"
                for row in comparison.regressions if row.section == "perplexity"]
    failures += [f"the {device} baseline has no row for {key}" for key in comparison.added]
    return failures


def quantised_copy(model, group_size: int, version: str):
    """RTN into the packed layout ``version`` (decode speed depends on the layout, not the method)."""
    quantised = copy.deepcopy(model).float()
    quantize_model(quantised, "rtn", QuantizeRequest(QuantSpec(4, group_size, True), version))
    return quantised


def decode_rows(float_model, ids: torch.Tensor, group_size: int, new_tokens: int, device: str,
                device_name: str, dry_run: bool, name: str) -> list[dict]:
    fp16 = copy.deepcopy(float_model).half().to(device)
    rows = []
    for version in ("gemm", "gemv"):
        quantised = quantised_copy(float_model, group_size, version).half().to(device)
        with kernel_backend("triton"):
            row = decode_record(f"{name}/{version}", group_size, quantised, fp16, ids.to(device), new_tokens,
                                device_name, dry_run)
        rows.append({**row, "layout": version})
    return rows
