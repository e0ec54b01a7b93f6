"""What ``quantize`` writes for each --method/--format: the layer step and output layout of the
layer-at-a-time path, and the in-memory GPTQ-layout writer.

``--format gptq`` writes GPTQ's v1 layout (``checkpoint_format: "gptq"``, what AutoGPTQ,
GPTQModel and vLLM read by default); v1 stores z - 1, so a group whose zero point is 0
(asymmetric, all weights >= 0) cannot be written and is reported as an error.
"""
from __future__ import annotations

from pathlib import Path

from awq_ref.checkpoint.awq import AwqConfig
from awq_ref.checkpoint.gptq import save_gptq_checkpoint
from awq_ref.checkpoint.writer import OutputLayout, awq_output, gptq_output
from awq_ref.methods.gptq import gptq
from awq_ref.methods.registry import QuantizeRequest, calibration_ids
from awq_ref.pipeline.steps import AwqStep, GptqStep, LayerStep, RtnStep

GPTQ_CHECKPOINT_FORMAT = "gptq"


def layer_step(method: str, request: QuantizeRequest, tokenizer) -> LayerStep:
    if method == "rtn":
        return RtnStep(request)
    if method == "awq":
        return AwqStep(request, calibration_ids(tokenizer, request))
    if method == "gptq":
        return GptqStep(request, calibration_ids(tokenizer, request), GPTQ_CHECKPOINT_FORMAT)
    raise ValueError(f"unknown method {method!r}")


def output_layout(model, request: QuantizeRequest, not_converted: list[str] | None) -> OutputLayout:
    if request.version == "gptq":
        return gptq_output(model, request.spec, request.gptq, GPTQ_CHECKPOINT_FORMAT)
    return awq_output(model, AwqConfig(request.spec, request.version, not_converted))


def save_gptq_in_memory(model, tokenizer, request: QuantizeRequest, out: Path, source: Path, meta_for,
                        overwrite: bool, on_layer) -> list:
    result = gptq(model, calibration_ids(tokenizer, request), request.spec, request.gptq, keep_weights=True,
                  on_layer=on_layer)
    save_gptq_checkpoint(model, result.weights, out, request.gptq, source=source, meta=meta_for(result.errors),
                         checkpoint_format=GPTQ_CHECKPOINT_FORMAT, overwrite=overwrite)
    return result.errors
