"""Run a checkpoint through third-party loaders (each only where that tool is installed)."""
from __future__ import annotations

from pathlib import Path

import torch


def autoawq_logits(folder: Path, token_ids: list[int]) -> torch.Tensor:
    """AutoAWQ's own loader on CPU: its naive torch GEMM path (fp16), as AutoAWQ 0.2.9 allows
    it there only with two switches (it forces IPEX on CPU, and its Triton kernel needs CUDA)."""
    import awq.models.base as base
    import awq.modules.linear.gemm as gemm
    from awq import AutoAWQForCausalLM

    base.get_best_device = lambda: "cpu-no-ipex"
    gemm.TRITON_AVAILABLE = False
    model = AutoAWQForCausalLM.from_quantized(str(folder), fuse_layers=False)
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits.float()


def transformers_logits(folder: Path, token_ids: list[int], dtype=torch.float16) -> torch.Tensor:
    """transformers' AWQ loader (GPTQModel's CPU kernel for AWQ; compressed-tensors for its format)."""
    from awq_ref.compat import causal_lm_from_pretrained

    model = causal_lm_from_pretrained(folder, dtype, device_map="cpu")
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits.float()
