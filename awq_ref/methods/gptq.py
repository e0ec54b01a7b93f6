"""GPTQ (Frantar et al. 2022): quantise columns one at a time, pushing each column's rounding
error onto the columns not yet quantised, weighted by the inverse Hessian of the layer loss.

For a linear with weight W [N, K] and calibration inputs X [T, K], the layer loss
||W X^T - W_hat X^T||^2 has Hessian H = 2 X^T X / T. With H^-1 = U^T U (U upper Cholesky
factor of the inverse), column k is quantised to q_k and the error e = (w_k - q_k) / U[k, k]
updates the remaining columns: W[:, j] -= e U[k, j] for j > k (lazily, in blocks of
``block_size`` columns). Choices, as in the reference code (IST-DASLab/gptq, AutoGPTQ):
  * dampening: H += damp * mean(diag H) * I; dead inputs (H[k, k] = 0) get H[k, k] = 1, w = 0;
  * act_order: columns in order of decreasing H[k, k]; the group of column k is then its
    position in that order // G (``g_idx``), unless ``static_groups``: group parameters are
    computed up front from the original columns k // G;
  * group parameters are computed when the first column of a group is reached, from the
    current, already error-updated weights of that group. (The original code reads them from
    the not-yet-updated W when a group starts inside a block; with block_size a multiple of
    G, as by default, this never happens.)
  * quantiser: GPTQ's min-max (``find_params``): range widened to include 0; asymmetric
    zero = round(-min / s); symmetric s = max|w| * 2 / maxq, zero = (maxq + 1) / 2.
    Scales are rounded to fp16 (what checkpoints store) before codes are computed;
  * true_sequential: inside a decoder layer the linears are quantised in the order of the
    architecture's scaling groups (q/k/v, o, gate/up, down), each seeing the outputs of the
    already-quantised ones; the next layer's input is the *quantised* layer's output.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.gptq import GroupIndexedWeight, gptq_tensors
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.methods.method import CalibratedStep, Method
from awq_harness.awq_ref.model.arch import expanded_groups, layer_prefix, linears_in
from awq_harness.awq_ref.model.walk import layer_forward, run_layer
from awq_harness.awq_ref.modules.swap import LinearError, relative_error
from awq_harness.awq_ref.primitives.compute_dtype import COMPUTE_DTYPES
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

STORED_SCALE_DTYPE = torch.float16


@dataclass(frozen=True)
class GptqConfig:
    damp: float = 0.01
    block_size: int = 128
    act_order: bool = False
    static_groups: bool = False
    true_sequential: bool = True
    compute_dtype: str = "float32"  # forwards; the weights and the GPTQ math stay float32

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class GptqWeight:
    """Codes in original column order; column k uses group g_idx[k] of scales/zeros."""

    q: torch.Tensor       # [N, K] int32
    scales: torch.Tensor  # [N, n_groups]
    zeros: torch.Tensor   # [N, n_groups] int32
    g_idx: torch.Tensor   # [K] int32
    spec: QuantSpec

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        idx = self.g_idx.long()
        return (self.q.to(dtype) - self.zeros.to(dtype)[:, idx]) * self.scales.to(dtype)[:, idx]

    def contiguous_groups(self) -> bool:
        k = torch.arange(self.q.shape[1], device=self.g_idx.device)
        return bool(torch.equal(self.g_idx.long(), k // (k.numel() // self.scales.shape[1])))

    def as_quantized_weight(self) -> QuantizedWeight:
        if not self.contiguous_groups():
            raise ValueError("act-order groups are not contiguous; this weight needs g_idx")
        return QuantizedWeight(self.q, self.scales, self.zeros, self.spec)

    def stored(self) -> GroupIndexedWeight:
        """What the GPTQ layout stores: the codes as they are, g_idx beside them."""
        return GroupIndexedWeight(QuantizedWeight(self.q, self.scales, self.zeros, self.spec), self.g_idx)


def stored_weights(weights: dict[str, GptqWeight]) -> dict[str, GroupIndexedWeight]:
    return {name: qw.stored() for name, qw in weights.items()}


def group_params(w: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """GPTQ ``find_params`` per row of w [N, g]: scale [N] (fp16-representable) and zero [N]."""
    lo, hi = w.amin(dim=1).clamp(max=0), w.amax(dim=1).clamp(min=0)
    if not spec.zero_point:
        hi = torch.maximum(lo.abs(), hi)
        lo = -hi
    both_zero = (lo == 0) & (hi == 0)
    lo, hi = torch.where(both_zero, -1.0, lo), torch.where(both_zero, 1.0, hi)
    scale = ((hi - lo) / spec.max_code).to(STORED_SCALE_DTYPE).float()
    if spec.zero_point:
        zero = torch.round(-lo / scale)
    else:
        zero = torch.full_like(scale, (spec.max_code + 1) // 2)
    return scale, zero


def quantize_column(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / scale) + zero, 0, maxq)


def inverse_hessian_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    h = h.clone()
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], device=h.device)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


class _Groups:
    """Scale/zero per group, filled as columns are reached (or all at once for static groups)."""

    def __init__(self, w: torch.Tensor, spec: QuantSpec, g: int, static: bool):
        n_groups = w.shape[1] // g
        self.scales = torch.zeros(w.shape[0], n_groups, device=w.device)
        self.zeros = torch.zeros(w.shape[0], n_groups, device=w.device)
        self.static, self.g, self.spec = static, g, spec
        if static:
            for i in range(n_groups):
                self.scales[:, i], self.zeros[:, i] = group_params(w[:, i * g : (i + 1) * g], self.spec)


@torch.no_grad()
def gptq_weight(w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, cfg: GptqConfig = GptqConfig()) -> GptqWeight:
    """Quantise w [N, K] given the Hessian h [K, K] of its layer loss."""
    w, h = w.detach().float().clone(), h.float().clone()
    n, k = w.shape
    g = spec.group_width(k)
    dead = torch.diag(h) == 0
    h[dead, dead], w[:, dead] = 1.0, 0.0
    groups = _Groups(w, spec, g, cfg.static_groups)
    perm = torch.argsort(torch.diag(h), descending=True) if cfg.act_order else torch.arange(k, device=w.device)
    w, h = w[:, perm], h[perm][:, perm]
    u = inverse_hessian_factor(h, cfg.damp)
    q = torch.zeros_like(w)
    g_idx = perm // g if cfg.static_groups else torch.arange(k, device=w.device) // g  # group of each permuted column
    for b0 in range(0, k, cfg.block_size):
        b1 = min(b0 + cfg.block_size, k)
        wb, err = w[:, b0:b1].clone(), torch.zeros(n, b1 - b0, device=w.device)
        for i in range(b1 - b0):
            col = b0 + i
            gi = int(perm[col]) // g if cfg.static_groups else col // g
            if not cfg.static_groups and col % g == 0:
                ahead = torch.cat([wb[:, i:], w[:, b1:]], dim=1)[:, :g]
                groups.scales[:, gi], groups.zeros[:, gi] = group_params(ahead, spec)
            s, z = groups.scales[:, gi], groups.zeros[:, gi]
            code = quantize_column(wb[:, i], s, z, spec.max_code)
            q[:, col] = code
            err[:, i] = (wb[:, i] - (code - z) * s) / u[col, col]
            wb[:, i:] -= err[:, i : i + 1] @ u[col : col + 1, b0 + i : b1]
        w[:, b1:] -= err @ u[b0:b1, b1:]
    inv = torch.argsort(perm)
    return GptqWeight(q[:, inv].to(torch.int32), groups.scales.to(STORED_SCALE_DTYPE),
                      groups.zeros.to(torch.int32), g_idx[inv].to(torch.int32), spec)


class HessianAccumulator:
    """H = 2 X^T X / T over all calibration tokens of one linear's input, in float32."""

    def __init__(self, k: int, device: torch.device | None = None):
        self.h, self.tokens = torch.zeros(k, k, device=device), 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        self.h += x.t() @ x
        self.tokens += x.shape[0]

    def hessian(self) -> torch.Tensor:
        return 2 * self.h / max(self.tokens, 1)


@dataclass
class GptqResult:
    weights: dict[str, GptqWeight] = field(default_factory=dict)  # kept when a layout is written
    errors: list[LinearError] = field(default_factory=list)
    seconds: float = 0.0


def sequential_subsets(model: nn.Module, layer: nn.Module, cfg: GptqConfig) -> list[list[str]]:
    names = list(linears_in(layer))
    if not cfg.true_sequential:
        return [names]
    subsets = [list(g.balance) for g in expanded_groups(model, layer)]
    covered = {n for s in subsets for n in s}
    return [s for s in subsets if s] + ([[n for n in names if n not in covered]] if covered != set(names) else [])


def shared_input_sets(names: list[str], inputs: dict[str, torch.Tensor]) -> list[list[str]]:
    """Linears fed by the same tensor (q/k/v, gate/up) share one Hessian: GPTQ runs on their
    stacked rows at once, which is the same computation (rows are independent given H)."""
    sets: dict[int | str, list[str]] = {}
    for name in names:
        sets.setdefault(id(inputs[name]) if name in inputs else name, []).append(name)
    return list(sets.values())


def split_rows(qw: GptqWeight, sizes: list[int]) -> list[GptqWeight]:
    parts = zip(qw.q.split(sizes), qw.scales.split(sizes), qw.zeros.split(sizes))
    return [GptqWeight(q.clone(), s.clone(), z.clone(), qw.g_idx.clone(), qw.spec) for q, s, z in parts]


@torch.no_grad()
def gptq_shared(master, work, names, x, spec, cfg, prefix, result, keep_weights) -> None:
    """``x`` None: no calibration token reached these linears (an expert nothing was routed to);
    H = I then, with which GPTQ's error feedback is zero: round to nearest with GPTQ's quantiser
    (a zero Hessian would mark every input dead and zero the weights)."""
    linears = [master.get_submodule(n) for n in names]
    if x is None:
        h = torch.eye(linears[0].in_features, device=linears[0].weight.device)
    else:
        acc = HessianAccumulator(x.shape[-1], x.device)
        acc.add(x)
        h = acc.hessian()
    stacked = gptq_weight(torch.cat([lin.weight for lin in linears]), h, spec, cfg)
    for name, linear, qw in zip(names, linears, split_rows(stacked, [lin.out_features for lin in linears])):
        w_hat = qw.dequantize(torch.float32)
        result.errors.append(LinearError(prefix + name, relative_error(linear.weight, w_hat)))
        linear.weight.copy_(w_hat.to(linear.weight.dtype))
        work.get_submodule(name).weight.copy_(w_hat.to(work.get_submodule(name).weight.dtype))
        if keep_weights:
            result.weights[prefix + name] = qw


@torch.no_grad()
def gptq_layer(model, master, hidden, kwargs, spec, cfg, prefix, result, keep_weights) -> torch.Tensor:
    """Quantise one layer; ``master`` holds the float32 weights, a working copy runs the forwards."""
    work = copy.deepcopy(master).to(COMPUTE_DTYPES[cfg.compute_dtype])
    for subset in sequential_subsets(model, master, cfg):
        _, inputs = layer_forward(work, hidden, kwargs)
        for names in shared_input_sets(subset, inputs):
            gptq_shared(master, work, names, inputs.get(names[0]), spec, cfg, prefix, result, keep_weights)
    return run_layer(work, hidden, kwargs)


GPTQ_CHECKPOINT_FORMAT = "gptq"  # v1: what AutoGPTQ, GPTQModel and vLLM read by default


def quantization_config(spec: QuantSpec, cfg: GptqConfig, checkpoint_format: str = GPTQ_CHECKPOINT_FORMAT) -> dict:
    """The GPTQ layout's keys (``formats.gptq``, with this run's act-order options) and the search
    settings loaders ignore but tools record (damp_percent, true_sequential)."""
    layout = gptq_layout.quantization_config(spec, checkpoint_format, cfg.act_order, cfg.static_groups)
    return {**layout, "damp_percent": cfg.damp, "true_sequential": cfg.true_sequential}


class GptqStep(CalibratedStep):
    """GPTQ on one layer; the next layer's input is the quantised layer's output. Weights become
    w_hat in place; with a version ("gptq") the codes are kept for the GPTQ layout's tensors."""

    def __init__(self, request, calib_ids: torch.Tensor, checkpoint_format: str = GPTQ_CHECKPOINT_FORMAT):
        super().__init__(calib_ids, COMPUTE_DTYPES[request.gptq.compute_dtype])
        self.request, self.checkpoint_format, self.result = request, checkpoint_format, GptqResult()
        self.started = time.perf_counter()

    def quantize(self, model, index, layer):
        before = len(self.result.errors)
        self.hidden = gptq_layer(model, layer, self.hidden, self.kwargs, self.request.spec, self.request.gptq,
                                 f"{layer_prefix(model)}.{index}.", self.result, self.request.version is not None)
        self.result.seconds = time.perf_counter() - self.started
        return self.result.errors[before:]

    def keep(self, model, index, layer):
        raise ValueError("GPTQ's layout has no float layers (modules_to_not_convert)")

    def tensors(self, prefix, layer):
        weights = {name: qw.stored() for name, qw in self.result.weights.items() if name.startswith(prefix)}
        state = {prefix + name: t for name, t in layer.state_dict().items()}
        for name in weights:
            del self.result.weights[name]
        return gptq_tensors(state, weights, self.checkpoint_format)


class GptqOptions:
    def add_flags(self, g) -> None:
        g.add_argument("--gptq-damp", type=float, default=GptqConfig.damp, help="GPTQ dampening (x mean diag H)")
        g.add_argument("--gptq-block-size", type=int, default=GptqConfig.block_size)
        g.add_argument("--gptq-act-order", action="store_true", help="GPTQ columns by decreasing Hessian diagonal")
        g.add_argument("--gptq-static-groups", action="store_true")

    def configure(self, request, args, dtype: str):
        return replace(request, gptq=GptqConfig(damp=args.gptq_damp, block_size=args.gptq_block_size,
                                                act_order=args.gptq_act_order,
                                                static_groups=args.gptq_static_groups, compute_dtype=dtype))


def _request_config(request) -> dict:
    return quantization_config(request.spec, request.gptq)


GPTQ = Method("gptq", GptqStep, formats=("gptq",), calibrated=True, options=GptqOptions(),
              quantization_config=_request_config)
