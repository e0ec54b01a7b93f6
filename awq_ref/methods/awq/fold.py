"""Fold AWQ scales into the op before a group, so the float model computes the same function.

For balance linears with input X = prev(h) and scales s (length K):
    W X = (W diag(s)) (diag(s)^-1 X),
so each balance weight is multiplied column-wise by s and the previous op's output is divided
by s:
  * a norm (RMSNorm or LayerNorm): weight /= s and bias /= s (AutoAWQ ``scale_ln_fcs``);
  * a linear: its last len(s) output rows and bias entries /= s (AutoAWQ ``scale_fc_fc``;
    "last" lets a fused qkv -> o touch only the v slice);
  * between fc1 and fc2 of OPT sits ReLU, and ReLU(x / s) = ReLU(x) / s for s > 0; in a Llama
    MLP up_proj's output enters act(gate) * up linearly, so both folds are exact.
  * Gemma's RMSNorm multiplies by (1 + w) (``ScalingGroup.norm_offset`` 1): the fold must give
    (1 + w') = (1 + w) / s, so w' = (1 + w) / s - 1; dividing w itself would leave (1 + w / s);
  * a fused linear (Phi-3 ``gate_up_proj`` -> ``down_proj``): only its last rows ("up") are
    divided, as for v in q|k|v.
  * float readers of a norm that are not balance linears (MoE routers, Qwen2-MoE's
    shared-expert gate: ``ScalingGroup.compensate``) get W diag(s) as well, or their outputs
    (routing logits, the gate's sigmoid input) change;
Activation -> linear folds (AutoAWQ ScaledActivation) are not supported.
"""
from __future__ import annotations

import torch
from torch import nn

from awq_harness.awq_ref.errors import ModelError
from awq_harness.awq_ref.model.arch import ScalingGroup


def _divide_linear_outputs(linear: nn.Linear, s: torch.Tensor) -> None:
    n = s.numel()
    linear.weight[-n:].div_(s.to(linear.weight.dtype)[:, None])
    if linear.bias is not None:
        linear.bias[-n:].div_(s.to(linear.bias.dtype))


def _divide_norm(norm: nn.Module, s: torch.Tensor, name: str, offset: float = 0.0) -> None:
    weight = getattr(norm, "weight", None)
    if weight is None or weight.dim() != 1 or weight.numel() != s.numel():
        raise ModelError(f"cannot fold AWQ scales into {name} ({type(norm).__name__}): "
                         f"expected a 1-D weight of {s.numel()} channels")
    if offset:
        weight.add_(offset).div_(s.to(weight.dtype)).sub_(offset)
    else:
        weight.div_(s.to(weight.dtype))
    if getattr(norm, "bias", None) is not None:
        norm.bias.div_(s.to(norm.bias.dtype))


@torch.no_grad()
def fold_scales(layer: nn.Module, group: ScalingGroup, s: torch.Tensor) -> None:
    prev = layer.get_submodule(group.prev)
    if isinstance(prev, nn.Linear):
        _divide_linear_outputs(prev, s)
    else:
        _divide_norm(prev, s, group.prev, group.norm_offset)
    for name in (*group.balance, *group.compensate):
        linear = layer.get_submodule(name)
        linear.weight.mul_(s.to(linear.weight.dtype)[None, :])
