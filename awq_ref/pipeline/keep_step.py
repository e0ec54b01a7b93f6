"""Keeping single linears in float while quantising (``--keep-layers`` with linear names).

Before a layer with kept linears is quantised, the method's step makes its float copy in the
basis the quantised layer will have (``LayerStep.float_copy``: AWQ reruns the layer's scale
search on a copy and folds the scales in, RTN copies); then the method quantises the layer as
usual, then the kept linears are swapped back in as float ones from that copy. The quantised
neighbours are exactly those of a run without the plan; only the kept linears differ.
"""
from __future__ import annotations

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods.method import LayerStep, Method, WrappedStep
from awq_harness.awq_ref.methods.registry import methods
from awq_harness.awq_ref.model.arch import layer_prefix
from awq_harness.awq_ref.pipeline.keep import restore_linears


def check_keeps_float(method: Method, asked_by: str = "--keep-layers") -> None:
    """``method`` can make the float copies that ``asked_by`` (a flag or command) needs."""
    if not method.keeps_float:
        able = "|".join(m.name for m in methods() if m.keeps_float)
        raise HarnessError(f"{asked_by}: --method {method.name} keeps no layers or linears in float "
                           f"(use --method {able})")


class KeepLinearsStep(WrappedStep):
    """Wraps a method's step for the layers that keep linears (``by_layer``: names relative to the layer)."""

    def __init__(self, inner: LayerStep, method: Method, by_layer: dict[int, list[str]]):
        if by_layer:
            check_keeps_float(method)
        super().__init__(inner)
        self.by_layer = by_layer

    def quantize(self, model, index, layer):
        names = self.by_layer.get(index)
        if not names:
            return self.inner.quantize(model, index, layer)
        folded = self.inner.float_copy(model, index, layer)
        errors = self.inner.quantize(model, index, layer)
        restore_linears(layer, folded, names)
        kept = {f"{layer_prefix(model)}.{index}.{name}" for name in names}
        return [e for e in errors if e.name not in kept]
