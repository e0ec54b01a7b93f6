"""Small builders shared by the foundation tests."""
import hashlib
from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec


def fp16_exact_tiny(family: str, seed: int = 0):
    """A tiny model whose float weights survive the fp16 round trip of a checkpoint exactly."""
    model = tiny_model(family, seed)
    for p in model.parameters():  # parameters only: buffers like rotary inv_freq are not stored
        p.data = p.data.half().float()
    return model


def quantized_tiny(family="llama", spec=QuantSpec(4, 64), version="gemm", seed=0):
    model = fp16_exact_tiny(family, seed)
    quantize_model(model, "rtn", QuantizeRequest(spec, version))
    return model


def write_tiny_checkpoint(out: Path, family="llama", spec=QuantSpec(4, 64), version="gemm", seed=0, **kw):
    model = quantized_tiny(family, spec, version, seed)
    save_checkpoint(model, out, AwqConfig(spec, version), **kw)
    return model


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


TOKENS = torch.arange(3, 40).reshape(1, -1)
