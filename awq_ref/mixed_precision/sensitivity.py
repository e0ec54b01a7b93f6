"""Which decoder layers' quantisation hurts most: one layer quantised at a time.

Method: run the float model once and keep each layer's float input h_i. For each layer i,
send h_i through the *quantised* layer i and then the float layers i+1..N, and measure the
next-token NLL at the output. The score is the NLL increase per token over the float model
(so it is additive-ish and comparable between layers). Cost: N(N+1)/2 layer forwards
(about N/2 full forwards) per window batch, plus one float forward. Both models are held
in memory (unlike ``layerwise``); the checkpoint's layer i is used whole, norms included,
which keeps AWQ's folded scales consistent.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from awq_harness.awq_ref.mixed_precision.layerwise import final_nll
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix
from awq_harness.awq_ref.model.walk import first_layer_inputs, run_layer


@dataclass(frozen=True)
class LayerSensitivity:
    layer: int
    name: str
    delta_nll: float     # NLL increase per token when only this layer is quantised
    ppl: float           # perplexity with only this layer quantised

    def to_json(self) -> dict:
        return asdict(self)


@torch.no_grad()
def float_layer_inputs(model: nn.Module, ids: torch.Tensor, dtype: torch.dtype):
    """The input of every decoder layer on the float path, the final hidden state, the kwargs."""
    hidden, kwargs = first_layer_inputs(model, ids, dtype)
    inputs = []
    for layer in decoder_layers(model):
        inputs.append(hidden)
        hidden = run_layer(layer, hidden, kwargs)
    return inputs, hidden, kwargs


@torch.no_grad()
def layer_sensitivity(reference: nn.Module, quantized: nn.Module, ids: torch.Tensor,
                      dtype: torch.dtype = torch.float32, on_layer=None) -> list[LayerSensitivity]:
    """Scores for every layer, most harmful first."""
    inputs, final, kwargs = float_layer_inputs(reference, ids, dtype)
    tokens = ids.numel() - ids.shape[0]
    base = final_nll(reference, final, ids)
    ref_layers, q_layers = decoder_layers(reference), decoder_layers(quantized)
    scores = []
    for i, h in enumerate(inputs):
        h = run_layer(q_layers[i], h, kwargs)
        for layer in ref_layers[i + 1:]:
            h = run_layer(layer, h, kwargs)
        nll = final_nll(reference, h, ids)
        scores.append(LayerSensitivity(i, f"{layer_prefix(reference)}.{i}", (nll - base) / tokens,
                                       math.exp(nll / tokens)))
        if on_layer:
            on_layer(i)
    return sorted(scores, key=lambda s: s.delta_nll, reverse=True)
