"""The few places where transformers 4.5x and 5.x spell things differently.

transformers 5 renamed the ``torch_dtype`` argument to ``dtype``; 4.51 (AutoAWQ's last
tested line, kept in the golden matrix) only knows ``torch_dtype``. transformers 5 fuses MoE experts
into 3-D parameters where 4.51 has one linear per expert; models built here have the latter.
"""
from __future__ import annotations

import torch
import transformers

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])
DTYPE_KWARG = "dtype" if TRANSFORMERS_MAJOR >= 5 else "torch_dtype"


def dtype_kwargs(dtype: torch.dtype) -> dict:
    return {DTYPE_KWARG: dtype}


def causal_lm_from_config(config, dtype: torch.dtype, **kwargs):
    """A model built from ``config``; mixture-of-experts blocks with one linear per expert under the
    checkpoint's names (``experts.per_expert_view``), as every transformers line stores them."""
    from transformers import AutoModelForCausalLM

    from awq_harness.awq_ref.model.experts import per_expert_view

    return per_expert_view(AutoModelForCausalLM.from_config(config, **dtype_kwargs(dtype), **kwargs))


def causal_lm_from_pretrained(path, dtype: torch.dtype, **kwargs):
    """A float model as transformers loads it, MoE experts then one linear per expert; a quantised
    checkpoint exactly as transformers' own loader builds it (what the portability tests judge)."""
    from transformers import AutoModelForCausalLM

    from awq_harness.awq_ref.model.experts import per_expert_view

    model = AutoModelForCausalLM.from_pretrained(path, **dtype_kwargs(dtype), **kwargs)
    quantised = getattr(model.config, "quantization_config", None) is not None
    return model if quantised else per_expert_view(model)
