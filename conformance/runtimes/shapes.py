"""What one tensor-parallel rank holds of each linear, the way the serving runtimes shard it.

Megatron-style sharding, as vLLM and SGLang build their linears (``model_executor/layers/linear.py``):

- column-parallel linears (q/k/v, gate/up and every other non-row-parallel one) split the
  output features: a rank holds ``N / tp`` rows. q/k/v are one merged ``QKVParallelLinear``
  and gate/up one ``MergedColumnParallelLinear``, so the kernel sees the *sum* of the parts a
  rank holds. k/v are split by heads: with fewer kv heads than ranks, each rank keeps one kv
  head (replicated), and ``tp`` must then be a multiple of the kv head count.
- row-parallel linears (o_proj, down_proj, ...) split the input features: a rank holds
  ``K / tp`` columns, so the groups per rank matter (``input_size_per_partition % group_size``).

Layers are grouped into rows: one per distinct (linear kind, N, K, group width, bits, symmetry),
with the number of layers that share it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from awq_harness.conformance.declared import Declared
from awq_harness.conformance.loaders import FUSED, ROW_PARALLEL
from awq_harness.conformance.structure import Layer

KV = ("k_proj", "v_proj")


@dataclass(frozen=True)
class Model:
    """The attention geometry from config.json (0 when the config does not say)."""
    heads: int = 0
    kv_heads: int = 0

    @classmethod
    def from_config(cls, config: dict | None) -> Model:
        c = config if isinstance(config, dict) else {}
        c = c.get("text_config") if isinstance(c.get("text_config"), dict) else c
        heads = c.get("num_attention_heads")
        kv = c.get("num_key_value_heads", heads)
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (heads, kv))
        return cls(heads, kv) if ok else cls()


@dataclass(frozen=True)
class Row:
    kind: str          # the linear's own name: q_proj, down_proj, ...
    n: int             # out_features
    k: int             # in_features
    group: int         # group width (K for one group per row)
    bits: int
    symmetric: bool
    g_idx: bool        # act-order (compressed-tensors weight_g_idx)
    merged: tuple[tuple[str, int], ...]  # the (kind, N) of the merged linear it belongs to (itself alone if none)
    prefixes: tuple[str, ...] = field(default=(), compare=False)
    act_dtype: str = "float16"  # the model's activation dtype (config torch_dtype)
    config_actorders: tuple[str, ...] = ()  # every activation ordering the config declares (any group)

    @property
    def count(self) -> int:
        return len(self.prefixes)

    @property
    def row_parallel(self) -> bool:
        return any(self.prefixes[0].endswith(p) for p in ROW_PARALLEL) if self.prefixes else False

    @property
    def group_size(self) -> int:
        """The config's group size: -1 for one group per row."""
        return -1 if self.group >= self.k else self.group


@dataclass(frozen=True)
class Part:
    """One rank's share. ``why``: the reason the split itself is impossible (None: it divides)."""
    n: int
    k: int
    merged_n: int      # out features of the merged linear on one rank (what the kernel sees)
    why: str | None = None


def _symmetric(layer: Layer, decl: Declared) -> bool:
    if "weight_zero_point" in layer.infos:
        return False
    if layer.layout.NAME == "compressed-tensors":
        return True
    return decl.zero_point is False


def _merged(layer: Layer, layers_by_prefix: dict[str, Layer]) -> tuple[tuple[str, int], ...]:
    parent, _, name = layer.prefix.rpartition(".")
    group = next((g for g in FUSED if name in g), None)
    if group is None:
        return ((name, layer.dims.n),)
    return tuple((g, layers_by_prefix[f"{parent}.{g}"].dims.n) for g in group if f"{parent}.{g}" in layers_by_prefix)


def act_dtype(config: dict | None) -> str:
    c = config if isinstance(config, dict) else {}
    dtype = c.get("torch_dtype", c.get("dtype"))
    return "bfloat16" if dtype == "bfloat16" else "float16"


def rows(layers: list[Layer], decl: Declared, dtype: str = "float16") -> list[Row]:
    by_prefix = {lay.prefix: lay for lay in layers}
    found: dict[tuple, list[str]] = {}
    for lay in layers:
        key = (lay.prefix.rpartition(".")[2], lay.dims.n, lay.dims.k, lay.group_width, round(lay.dims.bits),
               _symmetric(lay, decl), "weight_g_idx" in lay.infos, _merged(lay, by_prefix))
        found.setdefault(key, []).append(lay.prefix)
    orders = tuple(sorted(set(decl.actorders().values())))
    return [Row(*key, prefixes=tuple(prefixes), act_dtype=dtype, config_actorders=orders)
            for key, prefixes in found.items()]


def _column(kind: str, n: int, tp: int, model: Model) -> tuple[int, str | None]:
    """The rows of one column-parallel part a rank holds (k/v by heads)."""
    if kind in KV and model.kv_heads:
        kv = model.kv_heads
        if kv >= tp and kv % tp:
            return n // tp, f"{kv} kv heads do not split over {tp} ranks"
        if kv < tp and tp % kv:
            return n // tp, f"{tp} ranks are not a multiple of the {kv} kv heads"
        return (n // kv) * max(1, kv // tp), None
    if n % tp:
        return n // tp, f"{kind} out_features {n} do not split over {tp} ranks"
    return n // tp, None


def partition(row: Row, tp: int, model: Model) -> Part:
    if row.row_parallel:
        why = None if row.k % tp == 0 else f"{row.kind} in_features {row.k} do not split over {tp} ranks"
        return Part(row.n, row.k // tp, row.n, why)
    parts = [_column(kind, n, tp, model) for kind, n in row.merged]
    own = dict(zip((kind for kind, _ in row.merged), parts))[row.kind]
    why = next((w for _, w in parts if w), None)
    return Part(own[0], row.k, sum(p for p, _ in parts), why)


def heads_split(model: Model, tp: int) -> str | None:
    """Why ``tp`` ranks cannot split the attention heads (vLLM's ``verify_with_parallel_config``)."""
    if model.heads and model.heads % tp:
        return f"{model.heads} attention heads are not divisible by tensor-parallel size {tp}"
    return None
