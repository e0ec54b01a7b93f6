"""With ``--reference``: every reader of a normalisation output sees the scale folded into that norm.

AWQ divides a norm's output by per-channel scales s and multiplies every linear that reads
that output by s (``awq_ref.methods.awq.fold``), so the function is unchanged. A tool that
divides the norm but forgets one of its readers (a router, a shared-expert gate, a linear it
keeps in float), or that folds Gemma's (1 + w) norm as if it multiplied by w, changes the
function while every tensor stays well formed. With the float reference this is visible
directly, per decoder layer and per norm whose readers the family's scaling groups name
(``awq_ref.model.arch``):

  the stored norm multiplies by n_q = o + w_q, the reference's by n_r = o + w_r (o = 1 for
  Gemma's norms, else 0), so the norm implies the scales s = n_r / n_q;
  * a float reader must compute the reference's function: W_q diag(n_q) = W_r diag(n_r)
    (relative error at most FLOAT_TOLERANCE; fp16 storage rounds at about 1e-3), up to one factor
    per output row for a reader that is also a later group's previous op (an up_proj kept float);
  * a quantised reader's dequantised weight must be diag(r) W_r diag(s) up to quantisation
    noise (r: its own output rows divided by a later group's scales, up_proj before down_proj):
    the per-input-channel factors c fitted by least squares (``column_factors``) must follow s
    up to one common factor: the 90th percentile over channels of |log(c_k / s_k) - median|, less
    NOISE_Z standard errors of log c_k, stays below LOG_TOLERANCE (4-bit noise averages out over
    the rows of a column, but not in a column of small weights that its groups' grid barely
    resolves, whose c_k is known only loosely: the standard error says how loosely; nor for the few
    outlier columns that clipping shrinks, hence not the top percentile; a reader left
    unscaled is off by log s, largest on the channels AWQ protects most; a Gemma norm folded as
    w is off where s is far from 1, so a high quantile, not the median, sees it).

A reader whose weight is no scaled quantisation of the reference's at all (reference.error), a
family awq_ref has no entry for, or a layer whose tensors are missing, is not judged here
(reference.missing and the structure rules speak for those).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from awq_harness.conformance import decode
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.folder import open_folder
from awq_harness.conformance.reader import TensorReader
from awq_harness.conformance.reference import MAX_ALIGNED_ERROR
from awq_harness.conformance.safeheader import TensorInfo
from awq_harness.conformance.structure import Layer

REFERENCE_FOLD = Rule("reference.fold-consistency",
                      "with --reference: the scales folded into each norm are those in every reader of it")

FLOAT_TOLERANCE = 0.02
LOG_TOLERANCE = 0.15  # above the spread of correct checkpoints; GPTQ, which moves weights within columns, spreads most
QUANTILE = 0.9  # a wrong fold shows on the channels whose scales are far from 1; clipping moves a few outlier columns
NOISE_Z = 8.0  # standard errors of a channel's fitted log factor that count as noise, not as a wrong scale
MIN_NORM = 1e-3  # channels whose effective norm is this close to zero (relative to the largest) imply no scale


def _architecture(config: dict | None):
    from awq_harness.awq_ref.model.arch import ARCHITECTURES

    names = config.get("architectures") if isinstance(config, dict) else None
    names = names if isinstance(names, list) else []
    return next((ARCHITECTURES[n] for n in names if isinstance(n, str) and n in ARCHITECTURES), None)


def _layer_prefixes(arch, tensors: dict[str, TensorInfo]) -> list[str]:
    head = arch.layers_path + "."
    indices = {name[len(head):].split(".", 1)[0] for name in tensors if name.startswith(head)}
    return [f"{head}{i}." for i in sorted((i for i in indices if i.isdigit()), key=int)]


def _expanded(name: str, prefix: str, tensors: dict[str, TensorInfo]) -> list[str]:
    """A reader name; one holding the expert pattern becomes one name per expert stored under the layer."""
    from awq_harness.awq_ref.model.arch import EXPERT

    if EXPERT not in name:
        return [prefix + name]
    head, tail = (prefix + name).split(EXPERT)
    experts = {n[len(head):].split(".", 1)[0] for n in tensors if n.startswith(head)}
    return [f"{head}{e}{tail}" for e in sorted((e for e in experts if e.isdigit()), key=int)]


def _norm_groups(arch, tensors: dict[str, TensorInfo], prefix: str):
    """(norm name, offset, reader names) for each group of the family whose prev is a stored 1-D norm:
    its balance linears (every expert's) and the float readers it compensates (routers, gates)."""
    out = []
    for group in arch.scaling_groups:
        info = tensors.get(f"{prefix}{group.prev}.weight")
        if info is not None and len(info.shape) == 1 and info.is_float:
            readers = [r for name in (*group.balance, *group.compensate) for r in _expanded(name, prefix, tensors)]
            out.append((prefix + group.prev, group.norm_offset, readers))
    return out


def column_factors(w_hat: torch.Tensor, w_ref: torch.Tensor,
                   steps: int = 10) -> tuple[torch.Tensor, float, torch.Tensor]:
    """c with W_hat ~ diag(r) W_ref diag(c), by alternating least squares: a reader that is also
    the previous op of a later group (up_proj before down_proj, v_proj before o_proj, OPT's fc1)
    has its output rows divided by that group's scales, which r absorbs. Those can span orders of
    magnitude (a ReLU output channel that is nearly always zero), so r is fitted first and c on
    rows divided by r: every row counts alike, not only the few largest. Also returns the relative
    error of the fit and the standard error of each log c_k (from its column's residual)."""
    c = torch.ones(w_ref.shape[1], dtype=w_ref.dtype)
    for _ in range(steps):
        wc = w_ref * c
        r = (w_hat * wc).sum(1, keepdim=True) / wc.pow(2).sum(1, keepdim=True).clamp(min=1e-30)
        rows = w_hat / r.clamp(min=1e-30)
        c = (rows * w_ref).sum(0) / w_ref.pow(2).sum(0).clamp(min=1e-30)
    fitted = w_ref * r * c
    noise = (rows - w_ref * c).pow(2).sum(0) / max(w_ref.shape[0] - 1, 1)
    se_log = (noise / w_ref.pow(2).sum(0).clamp(min=1e-30)).sqrt() / c.abs().clamp(min=1e-30)
    return c, float(torch.linalg.norm(w_hat - fitted) / torch.linalg.norm(fitted).clamp(min=1e-30)), se_log


def _float_reader(name: str, w_q: torch.Tensor, w_r: torch.Tensor, n_q: torch.Tensor, n_r: torch.Tensor,
                  norm: str, rows_scaled: bool = False) -> Finding | None:
    """``rows_scaled``: the reader is also the previous op of a later group (an up_proj kept in float),
    so its output rows carry that group's scales: one factor per row is fitted first. Never for a
    router, whose rows scaled apart would change the routing."""
    eff_q, eff_r = w_q * n_q, w_r * n_r
    if rows_scaled:
        eff_r = eff_r * ((eff_q * eff_r).sum(1, keepdim=True) / eff_r.pow(2).sum(1, keepdim=True).clamp(min=1e-30))
    err = float(torch.linalg.norm(eff_q - eff_r) / torch.linalg.norm(eff_r).clamp(min=1e-30))
    if err <= FLOAT_TOLERANCE:
        return None
    return REFERENCE_FOLD.finding(
        f"float {name} reads {norm}, but its weight times the stored norm is {err:.3f} (relative) away from the "
        f"reference's: the norm was rescaled and this reader was not compensated", tensor=name)


def _quantised_reader(name: str, w_hat: torch.Tensor, w_r: torch.Tensor, s: torch.Tensor, valid: torch.Tensor,
                      norm: str) -> Finding | None:
    c, residual, se_log = column_factors(w_hat, w_r)
    if not residual <= MAX_ALIGNED_ERROR:
        return None  # not a quantisation of the reference weight at all: reference.error says so
    ok = valid & (c > 0) & (w_r.pow(2).sum(0) > 0)
    if not bool(ok.any()):
        return None
    log_ratio = (c[ok] / s[ok]).log()
    beyond_noise = ((log_ratio - log_ratio.median()).abs() - NOISE_Z * se_log[ok]).clamp(min=0)
    dev = float(beyond_noise.quantile(QUANTILE))  # r, c: up to one common factor
    if dev <= LOG_TOLERANCE:
        return None
    return REFERENCE_FOLD.finding(
        f"{name} reads {norm}: its input channels carry scales that are not the ones the stored norm implies "
        f"(|log(c / s)| centred, beyond {NOISE_Z:g} standard errors, {QUANTILE:.0%} quantile {dev:.3f} > "
        f"{LOG_TOLERANCE}): a reader was not "
        f"scaled with the norm, or the norm was folded with the wrong form (Gemma's norms multiply by 1 + w, "
        f"not w)", tensor=name)


def _check_group(norm: str, offset: float, readers: list[str], tensors, ref, reader: TensorReader,
                 ref_reader: TensorReader, quantised: dict[str, Layer], v1: bool,
                 prevs: frozenset[str] = frozenset()) -> list[Finding]:
    ref_norm = ref.tensors.get(norm + ".weight")
    if ref_norm is None or ref_norm.shape != tensors[norm + ".weight"].shape:
        return []
    n_q = offset + reader.get(tensors[norm + ".weight"]).double()
    n_r = offset + ref_reader.get(ref_norm).double()
    valid = (n_q.abs() > MIN_NORM * n_q.abs().max()) & (n_r.abs() > MIN_NORM * n_r.abs().max())
    s = torch.where(valid, n_r / torch.where(valid, n_q, torch.ones_like(n_q)), torch.ones_like(n_q))
    found = []
    for name in readers:
        info = ref.tensors.get(name + ".weight")
        if info is None or len(info.shape) != 2 or info.shape[1] != s.numel():
            continue
        w_r = ref_reader.get(info).double()
        if name in quantised:
            layer = quantised[name]
            w_hat = decode.weight(layer, {k: reader.get(i) for k, i in layer.infos.items()}, v1)
            finding = _quantised_reader(name, w_hat.double(), w_r, s, valid & (s > 0), norm)
        elif name + ".weight" in tensors and tensors[name + ".weight"].is_float:
            finding = _float_reader(name, reader.get(tensors[name + ".weight"]).double(), w_r, n_q, n_r, norm,
                                    name in prevs)
        else:
            continue
        if finding is not None:
            found.append(finding)
    return found


def check(layers: list[Layer], tensors: dict[str, TensorInfo], reader: TensorReader, v1: bool, config: dict | None,
          reference: str, remote=None) -> list[Finding]:
    arch = _architecture(config) or _architecture(_read_config(reference))
    if arch is None:
        return []
    ref, ref_reader = open_folder(reference), TensorReader(remote=remote)  # remote: a URL reference's files
    quantised = {layer.prefix: layer for layer in layers}
    found = []
    for prefix in _layer_prefixes(arch, tensors):
        prevs = frozenset(p for g in arch.scaling_groups for p in _expanded(g.prev, prefix, tensors))
        for norm, offset, readers in _norm_groups(arch, tensors, prefix):
            found += _check_group(norm, offset, readers, tensors, ref, reader, ref_reader, quantised, v1, prevs)
    return found


def _read_config(reference: str) -> dict | None:
    try:
        return json.loads((Path(reference) / "config.json").read_text())
    except (OSError, ValueError):
        return None
