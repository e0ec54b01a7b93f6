"""Load any checkpoint the verifier reads (AWQ GEMM/GEMV, compressed-tensors, GPTQ) as a float
model whose quantised linears hold their dequantised weights (q - z) * s.

The reference path for formats ``awq_ref.checkpoint.awq`` does not run natively: the same decode
the verifier checks, then a plain float forward. Only a verified checkpoint is loaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from awq_harness.awq_ref.errors import CheckpointError
from awq_harness.conformance import decode
from awq_harness.conformance.runner import load_layers, verify


def load_dequantized(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    from transformers import AutoConfig

    from awq_harness.awq_ref.model.compat import causal_lm_from_config

    report = verify(folder)
    if not report.conforms:
        first = next(f.line() for f in report.findings if f.severity == "error")
        raise CheckpointError(f"{folder}: does not verify: {first}")
    found, decl, layers, reader, _ = load_layers(folder)
    config = {k: v for k, v in found.config.items() if k != "quantization_config"}
    model = causal_lm_from_config(AutoConfig.for_model(**config), dtype).eval()
    owned = {info.name for layer in layers for info in layer.infos.values()}
    state = {name: reader.get(info) for name, info in found.tensors.items() if name not in owned}
    for layer in layers:
        tensors = {s: reader.get(i) for s, i in layer.infos.items()}
        state[f"{layer.prefix}.weight"] = decode.weight(layer, tensors, decl.gptq_v1)
        if "bias" in tensors:
            state[f"{layer.prefix}.bias"] = tensors["bias"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [m for m in missing if not (tied and m == "lm_head.weight")]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if tied:
        model.tie_weights()
    return model
