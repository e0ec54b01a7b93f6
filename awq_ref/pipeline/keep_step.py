"""Keeping single linears in float while quantising: for the layer-at-a-time and in-memory paths.

For a layer with kept linears, its folded float copy is made first (``awq_ref.pipeline.refold``: AWQ's
scale search of that layer alone, on the same calibration input the real search gets), then
the method quantises the layer as usual, then the kept linears are swapped back in as float
ones from the folded copy. The quantised neighbours are exactly those of a run without the
plan; only the kept linears differ (float instead of packed).
"""
from __future__ import annotations

import copy

from torch import nn

from awq_ref.errors import HarnessError
from awq_ref.model.arch import decoder_layers, layer_prefix
from awq_ref.pipeline.keep import KeepPlan, restore_linears
from awq_ref.pipeline.refold import fold_layer_copy, folded_layers


class KeepLinearsStep:
    """Wraps a method's step (``awq_ref.pipeline.steps.LayerStep``) for the layers that keep linears."""

    def __init__(self, inner, method: str, request, by_layer: dict[int, list[str]]):
        if by_layer and method not in ("awq", "rtn"):
            raise HarnessError(f"single linears can be kept in float with --method awq or rtn, not {method}")
        self.inner, self.method, self.request, self.by_layer = inner, method, request, by_layer

    def begin(self, model):
        self.inner.begin(model)

    def keep(self, model, index, layer):
        self.inner.keep(model, index, layer)

    def tensors(self, prefix, layer):
        return self.inner.tensors(prefix, layer)

    def quantize(self, model, index, layer):
        names = self.by_layer.get(index)
        if not names:
            return self.inner.quantize(model, index, layer)
        folded = self._folded(model, index, layer)
        errors = self.inner.quantize(model, index, layer)
        restore_linears(layer, folded, names)
        kept = {f"{layer_prefix(model)}.{index}.{name}" for name in names}
        return [e for e in errors if e.name not in kept]

    def _folded(self, model, index, layer) -> nn.Module:
        if self.method == "rtn":
            return copy.deepcopy(layer)
        folded, _ = fold_layer_copy(layer, model, self.inner.hidden, self.inner.kwargs, self.request, index)
        return folded


def folded_before_quantizing(model: nn.Module, method: str, tokenizer, request, keep: KeepPlan) -> dict[int, nn.Module]:
    """In-memory path: folded float copies of the layers that keep linears, from the float model."""
    return folded_layers(model, method, tokenizer, request, sorted(keep.linears_by_layer(layer_prefix(model))))


def restore_kept_linears(model: nn.Module, folded: dict[int, nn.Module], keep: KeepPlan) -> None:
    layers = decoder_layers(model)
    for index, names in keep.linears_by_layer(layer_prefix(model)).items():
        restore_linears(layers[index], folded[index], names)
