"""A loaded model in another floating dtype, exactly as ``from_pretrained`` in that dtype gives it.

``nn.Module.to(dtype)`` casts every floating buffer, including the ones a model computes at
construction instead of loading: the rotary embedding's ``inv_freq`` (and ``original_inv_freq``).
``from_pretrained(dtype=torch.bfloat16)`` casts only what the checkpoint holds and leaves those
computed buffers in float32. In bfloat16 the frequencies keep 8 significant bits, so rotation
angles drift with position (about a radian at position 512) and the logits of a cast model differ
from the same model loaded in bfloat16 by up to about 1 on the default model. Scoring a quantised
model against the float reference must not carry that difference, so models change dtype here.
"""
from __future__ import annotations

import torch
from torch import nn


def computed_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers the state dict does not hold (non-persistent: built by the module, not loaded)."""
    stored = set(model.state_dict())
    return {name: buf for name, buf in model.named_buffers() if name not in stored}


def cast_model(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``model`` with its parameters and stored buffers in ``dtype``; computed buffers keep their
    dtype, as ``from_pretrained`` leaves them. In place, like ``Module.to``; returns the model."""
    kept = computed_buffers(model)
    model.to(dtype)
    for name, buf in kept.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, buf)
    return model
