"""AWQ on one decoder layer: the driver that ties statistics, scale search, folding and clipping.

For each decoder layer (AutoAWQ ``AwqQuantizer.quantize``; ``method.AwqStep`` calls this per layer,
``awq_ref.pipeline.layer_loop`` drives the layers):
  1. run a working copy of the float layer (in the compute dtype) on its inputs, recording
     every linear's input; its output is the next layer's input. As in llm-awq and AutoAWQ
     this is the float output *before* any scaling or quantisation (no error propagation;
     llm-compressor propagates smoothed outputs instead);
  2. search the scales of every scaling group on the original weights (``scale``);
  3. fold all of them into the float32 master layer (``fold``) and divide the recorded
     inputs of the scaled linears by their scales;
  4. clip search on the folded weights with the scaled inputs, except q/k (``clip``);
     mixture-of-experts layers: each expert's statistics, search and clip use the tokens routed
     to it (its linears' recorded inputs); the post-attention norm's group reads the block's
     input (every token) and compensates the router; an expert no token reached keeps unit
     scales and is quantised unclipped;
  5. quantise the layer's linears: ``fake`` writes w_hat back into the float weights,
     ``real`` swaps in AwqLinear modules (4-bit layouts), ``scale_only`` stops after 3
     (the float function is unchanged; used to test folding end to end).
Memory beyond the model itself: one working copy of a layer plus its activations.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from awq_harness.awq_ref.methods.awq.blocks import block_rows, select_blocks
from awq_harness.awq_ref.methods.awq.clip import apply_clip, search_clip
from awq_harness.awq_ref.methods.awq.config import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.fold import fold_scales
from awq_harness.awq_ref.methods.awq.scale import ScaleChoice, search_scale
from awq_harness.awq_ref.methods.awq.stats import activation_mean, weight_mean
from awq_harness.awq_ref.model.arch import clipped, layer_prefix, linears_in, scaling_groups
from awq_harness.awq_ref.model.walk import layer_forward
from awq_harness.awq_ref.modules.swap import LinearError, relative_error, replace_linears
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec, quantize

STORED_SCALE_DTYPE = torch.float16
MODES = ("fake", "real", "scale_only")


@dataclass
class GroupRecord:
    layer: int
    prev: str
    balance: tuple[str, ...]
    alpha: float
    loss: float
    scales: torch.Tensor | None = None  # kept only with keep_tensors
    losses: list[float] = field(default_factory=list)  # one per grid point


@dataclass
class AwqResult:
    groups: list[GroupRecord] = field(default_factory=list)
    clips: dict[str, torch.Tensor] = field(default_factory=dict)  # kept only with keep_tensors
    errors: list[LinearError] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 2),
                "alphas": [[g.layer, g.prev, g.alpha] for g in self.groups]}


def unrouted(group, inputs: dict) -> bool:
    """A group whose input no token reached (an expert no calibration token was routed to): it keeps
    unit scales (nothing folded), and its linears are quantised without clipping (round to nearest)."""
    return group.x_name not in inputs


def search_layer_scales(work: nn.Module, master: nn.Module, groups, inputs: dict, kwargs: dict,
                        spec: QuantSpec, cfg: AwqSearchConfig) -> list[ScaleChoice | None]:
    """One choice per group; None for an unrouted group."""
    choices = []
    for group in groups:
        if unrouted(group, inputs):
            choices.append(None)
            continue
        x = inputs[group.x_name]
        x_loss, kwargs_loss = select_blocks(x, kwargs, block_rows(x.shape[0], cfg.loss_blocks))
        masters = [master.get_submodule(n).weight.detach().float() for n in group.balance]
        choices.append(search_scale(
            linears=[work.get_submodule(n) for n in group.balance], master_weights=masters,
            inspect=work.get_submodule(group.inspect), x=x_loss, kwargs=kwargs_loss if group.takes_kwargs else {},
            x_mean=activation_mean(x), w_mean=weight_mean(masters, spec.group_size),
            spec=spec, n_grid=cfg.n_grid, duo=cfg.duo_scaling))
    return choices


def clip_layer(master: nn.Module, inputs: dict, spec: QuantSpec, cfg: AwqSearchConfig) -> dict[str, torch.Tensor]:
    clips = {}
    for name, linear in linears_in(master).items():
        if clipped(name) and name in inputs:
            clips[name] = search_clip(linear.weight.detach(), inputs[name], spec, cfg.clip_grid,
                                      cfg.max_shrink, cfg.clip_tokens, cfg.torch_dtype)
            apply_clip(linear.weight.data, clips[name])
    return clips


@torch.no_grad()
def quantize_layer(master: nn.Module, spec: QuantSpec, mode: str, version: str, prefix: str) -> list[LinearError]:
    quantized: dict[str, QuantizedWeight] = {}
    errors = []
    for name, linear in linears_in(master).items():
        qw = quantize(linear.weight.detach().float(), spec, scale_dtype=STORED_SCALE_DTYPE)
        w_hat = qw.dequantize(torch.float32)
        errors.append(LinearError(prefix + name, relative_error(linear.weight, w_hat)))
        if mode == "fake":
            linear.weight.copy_(w_hat.to(linear.weight.dtype))
        quantized[name] = qw
    if mode == "real":
        replace_linears(master, quantized, version)
    return errors


@torch.no_grad()
def awq_layer(master: nn.Module, model: nn.Module, hidden: torch.Tensor, kwargs: dict, spec: QuantSpec,
              cfg: AwqSearchConfig, mode: str, version: str, index: int, result: AwqResult,
              keep_tensors: bool) -> torch.Tensor:
    work = copy.deepcopy(master).to(cfg.torch_dtype)
    groups = scaling_groups(model, master)
    out, inputs = layer_forward(work, hidden, kwargs, also=tuple({g.input_of for g in groups if g.input_of}))
    choices = search_layer_scales(work, master, groups, inputs, kwargs, spec, cfg)
    del work
    prefix = f"{layer_prefix(model)}.{index}."
    for group, choice in zip(groups, choices):
        if choice is None:
            continue
        fold_scales(master, group, choice.scales)
        for name in (n for n in group.balance if n in inputs):
            inputs[name] = inputs[name] / choice.scales.to(inputs[name].dtype)
        result.groups.append(GroupRecord(index, group.prev, group.balance, choice.alpha, choice.loss,
                                         choice.scales if keep_tensors else None, choice.losses))
    if mode != "scale_only":
        clips = clip_layer(master, inputs, spec, cfg) if cfg.clip else {}
        if keep_tensors:
            result.clips.update({prefix + k: v for k, v in clips.items()})
        result.errors += quantize_layer(master, spec, mode, version, prefix)
    return out
