"""Capture what a decoder layer sees: the first layer's inputs and kwargs, each linear's input.

``first_layer_inputs`` runs the model on the calibration tokens until decoder layer 0 is
called (AutoAWQ's "Catcher"), so only the embedding and whatever precedes layer 0 run.
``layer_forward`` runs one layer while forward hooks record the input of every linear.
"""
from __future__ import annotations

import torch
from torch import nn

from awq_harness.awq_ref.model.arch import decoder_layers, linears_in


class _ReachedFirstLayer(Exception):
    pass


def _to_dtype(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_to_dtype(v, dtype) for v in value)
    return value


@torch.no_grad()
def first_layer_inputs(model: nn.Module, input_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, dict]:
    """Hidden states entering decoder layer 0 and the kwargs it is called with, in ``dtype``, on the
    device of the input embedding (where the ids are moved)."""
    seen = {}

    def catch(module, args, kwargs):
        seen["hidden"] = args[0] if args else kwargs.pop("hidden_states")
        seen["kwargs"] = kwargs
        raise _ReachedFirstLayer

    handle = decoder_layers(model)[0].register_forward_pre_hook(catch, with_kwargs=True)
    try:
        model(input_ids=input_ids.to(model.get_input_embeddings().weight.device), use_cache=False)
    except _ReachedFirstLayer:
        pass
    finally:
        handle.remove()
    kwargs = {k: _to_dtype(v, dtype) for k, v in seen["kwargs"].items() if k != "past_key_values"}
    kwargs["use_cache"] = False
    return seen["hidden"].to(dtype), kwargs


def run_layer(layer: nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
    out = layer(hidden, **kwargs)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def layer_forward(layer: nn.Module, hidden: torch.Tensor, kwargs: dict,
                  also: tuple[str, ...] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The layer's output and the input of each of its linears (by name relative to the layer), and of
    the modules named in ``also`` (a MoE block: every token, where each expert sees its routed ones).
    An expert that no token was routed to has no entry."""
    inputs: dict[str, torch.Tensor] = {}
    modules = {**linears_in(layer), **{name: layer.get_submodule(name) for name in also}}
    handles = [m.register_forward_hook(lambda m, args, out, name=name: inputs.__setitem__(name, args[0]))
               for name, m in modules.items()]
    try:
        out = run_layer(layer, hidden, kwargs)
    finally:
        for h in handles:
            h.remove()
    return out, inputs
