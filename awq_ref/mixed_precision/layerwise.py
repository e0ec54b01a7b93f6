"""Float vs quantised model side by side, one decoder layer at a time (functional check).

For every decoder layer i, with h_fp the float model's input to layer i and h_q the
quantised model's own input (the accumulated path):
    isolated error     ||Q_i(h_fp) - F_i(h_fp)|| / ||F_i(h_fp)||   (layer i's own damage)
    accumulated error  ||Q_i(h_q)  - F_i(h_fp)|| / ||F_i(h_fp)||   (everything up to layer i)
    SQNR (dB)          10 log10(||F||^2 / ||Q - F||^2), for both
End to end, both models' perplexity on the same windows (exp of the mean next-token NLL).
Only one layer of each model is in memory at a time (see ``awq_ref.checkpoint.lazy``); with
``device`` (a GPU) that pair of layers and the hidden states are moved there, and the rest of
both models stays on disk.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.lazy import open_lazy
from awq_harness.awq_ref.eval.perplexity import next_token_nll
from awq_harness.awq_ref.model.arch import final_norm, output_logits
from awq_harness.awq_ref.model.walk import first_layer_inputs, run_layer
from awq_harness.awq_ref.primitives.device import CPU, to_device


@dataclass(frozen=True)
class LayerError:
    layer: int
    isolated_rel_error: float
    isolated_sqnr_db: float
    accumulated_rel_error: float
    accumulated_sqnr_db: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LayerwiseReport:
    layers: list[LayerError]
    ppl_reference: float
    ppl_quantized: float
    tokens: int

    @property
    def ppl_ratio(self) -> float:
        return self.ppl_quantized / self.ppl_reference

    def to_json(self) -> dict:
        return {"layers": [e.to_json() for e in self.layers], "ppl_reference": self.ppl_reference,
                "ppl_quantized": self.ppl_quantized, "ppl_ratio": self.ppl_ratio, "tokens": self.tokens}


def rel_error_and_sqnr(approx: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    noise = (approx.double() - exact.double()).pow(2).sum()
    signal = exact.double().pow(2).sum()
    rel = math.sqrt(float(noise / signal.clamp(min=1e-300)))
    sqnr = float("inf") if noise == 0 else 10 * math.log10(float(signal / noise))
    return rel, sqnr


def final_nll(model: nn.Module, hidden: torch.Tensor, ids: torch.Tensor) -> float:
    """Total next-token NLL from the last decoder layer's output (final norm, then the head), on
    the device of ``hidden``."""
    final_norm(model).to(hidden.device)  # in place: modules move, tensors do not
    model.get_output_embeddings().to(hidden.device)
    return float(next_token_nll(output_logits(model, hidden), ids.to(hidden.device)).sum())


@torch.no_grad()
def compare_layerwise(reference: str, quantized: str, windows: torch.Tensor,
                      dtype: torch.dtype = torch.float32, on_layer=None,
                      device: torch.device = CPU) -> LayerwiseReport:
    """``windows`` [n, seqlen] token ids; both folders must share the architecture; each layer
    pair runs on ``device``."""
    ref, qnt = open_lazy(reference, dtype), open_lazy(quantized, dtype)
    for lazy in (ref, qnt):
        lazy.materialize_outside_layers()
    h_ref, kwargs = to_device(first_layer_inputs(ref.model, windows, dtype), device)
    h_q = first_layer_inputs(qnt.model, windows, dtype)[0].to(device)
    errors = []
    for i in range(len(ref.layers)):
        for lazy in (ref, qnt):
            lazy.materialize(lazy.layer_name(i))
            lazy.layers[i].to(device)
        out_ref = run_layer(ref.layers[i], h_ref, kwargs)
        iso = rel_error_and_sqnr(run_layer(qnt.layers[i], h_ref, kwargs), out_ref)
        h_q = run_layer(qnt.layers[i], h_q, kwargs)
        errors.append(LayerError(i, *iso, *rel_error_and_sqnr(h_q, out_ref)))
        h_ref = out_ref
        for lazy in (ref, qnt):
            lazy.release(lazy.layer_name(i))
        if on_layer:
            on_layer(i)
    tokens = windows.numel() - windows.shape[0]
    ppl = [math.exp(final_nll(m.model, h, windows) / tokens) for m, h in ((ref, h_ref), (qnt, h_q))]
    return LayerwiseReport(errors, ppl[0], ppl[1], tokens)
