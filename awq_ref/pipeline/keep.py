"""What ``quantize --keep-layers`` keeps in float: whole decoder layers and single linears.

The spec is '3,7,model.layers.5.mlp.down_proj' (indices are layers, dotted names linears) or
a plan file from ``awq-harness plan --json`` (``plan.keep_layers`` and ``plan.keep_linears``).
A kept layer is the float layer. A kept linear inside a quantised layer is the float weight in
that layer's AWQ basis (``awq_ref.pipeline.refold``): its scaling group's scales folded in, never
clipped, so it matches the folded norm or linear before it and the quantised ones around it.
Both are listed in ``modules_to_not_convert`` (layers as 'model.layers.3.', linears by name).

A plan made with ``plan --keep-as 8bit`` keeps its modules at 8 bits instead (``keep_as``);
only the compressed-tensors layout stores two code widths (``pipeline.keep_ct``), so the
AutoAWQ and GPTQ layouts refuse such a plan. A plain list is kept as ``keep_as`` says.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_harness.awq_ref.modules.swap import set_submodule


@dataclass(frozen=True)
class KeepPlan:
    layers: list[int] = field(default_factory=list)
    linears: list[str] = field(default_factory=list)   # full module names
    keep_as: str = "float"  # or "8bit"

    def not_converted(self, prefix: str) -> list[str] | None:
        return [f"{prefix}.{i}." for i in self.layers] + self.linears or None

    def kept_linears(self, model: nn.Module) -> list[str]:
        """Every decoder linear the plan keeps, full names: those of kept layers and the single ones."""
        prefix = layer_prefix(model)
        layers = decoder_layers(model)
        return sorted({f"{prefix}.{i}.{name}" for i in self.layers for name in linears_in(layers[i])}
                      | set(self.linears))

    def linears_by_layer(self, prefix: str) -> dict[int, list[str]]:
        """Kept linears per layer index, named relative to their layer."""
        out: dict[int, list[str]] = {}
        for name in self.linears:
            index, _, rest = name[len(prefix) + 1:].partition(".")
            out.setdefault(int(index), []).append(rest)
        return out


def _read(spec: str, keep_as: str | None) -> tuple[list, list, str]:
    if Path(spec).is_file():
        plan = json.loads(Path(spec).read_text())["plan"]
        planned = str(plan.get("keep_as", "float"))
        if keep_as is not None and keep_as != planned:
            raise HarnessError(f"--keep-layers {spec} keeps its modules as {planned!r}, not --keep-as {keep_as}")
        return list(plan["keep_layers"]), list(plan.get("keep_linears") or []), planned
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    return [int(p) for p in parts if p.isdigit()], [p for p in parts if not p.isdigit()], keep_as or "float"


def _decoder_linear_names(model: nn.Module) -> set[str]:
    prefix = layer_prefix(model)
    return {f"{prefix}.{i}.{name}" for i, layer in enumerate(decoder_layers(model)) for name in linears_in(layer)}


def parse_keep(spec: str | None, model: nn.Module, keep_as: str | None = None,
               writes: tuple[str, ...] = ("float",)) -> KeepPlan:
    """Check every entry against ``model`` (a skeleton is enough); ``keep_as``: how a plain list is
    kept (a plan file says it itself); ``writes``: the ways the output layout can keep modules."""
    if not spec:
        return KeepPlan()
    try:
        layers, linears, keep_as = _read(spec, keep_as)
    except (ValueError, KeyError, TypeError) as err:
        raise HarnessError(f"--keep-layers {spec!r}: expected '3,7,model.layers.5.mlp.down_proj' "
                           f"or a plan JSON file ({err})") from None
    n_layers = len(decoder_layers(model))
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < n_layers]
    if bad:
        raise HarnessError(f"--keep-layers: no decoder layer {bad} (the model has {n_layers})")
    unknown = sorted(set(linears) - _decoder_linear_names(model))
    if unknown:
        raise HarnessError(f"--keep-layers: {unknown[:3]} are not linears of the model's decoder layers")
    if keep_as not in writes:
        raise HarnessError(f"--keep-layers: the plan keeps its modules as {keep_as!r}; this layout keeps them "
                           f"{' or '.join(writes)} (8-bit modules need --format compressed-tensors)")
    prefix = layer_prefix(model)
    inside_kept = [n for n in linears if int(n[len(prefix) + 1:].partition(".")[0]) in layers]
    return KeepPlan(sorted(set(layers)), sorted(set(linears) - set(inside_kept)), keep_as)


def restore_linears(layer: nn.Module, folded_layer: nn.Module, names: list[str]) -> None:
    """Swap the quantised linears ``names`` of ``layer`` for the folded float ones."""
    for name in names:
        set_submodule(layer, name, folded_layer.get_submodule(name))
