"""Numeric rules on one checked layer: scales, zeros, zero-filled codes, and plausibility.

Plausibility without a reference (rules numeric.zero-offset, numeric.code-zero-coherence).
Round-to-nearest and AWQ give every group g of every output channel a zero z with
q = round(w / s) + z, so the mean code of the group is z + mean(w) / s. Weights within a
group are close to zero-mean, so d = mean(q) - z is near 0 in every group:

* zeros off by one (GPTQ-v1 "z - 1" written into an AWQ file, or the reverse) shift d by
  +-1 in *every* group: the median of d moves from ~0 to ~+-1  -> numeric.zero-offset;
* a wrong nibble order in qweight or in qzeros (not both) pairs each channel's codes with
  another channel's zeros, so d carries the difference of two channels' zeros. We measure
  the scatter of d (root-mean-square about its median) as stored, and again after
  re-pairing zeros to codes by each alternative nibble order (AutoAWQ's interleave and its
  inverse, within each word of 8 channels). As stored, a well-formed layer fits best;
  when an alternative order cuts the scatter by more than 20%, the tensors were packed in
  different orders -> numeric.code-zero-coherence. The test is relative, so it needs no
  threshold tuned to group size or weight distribution, and it is skipped when the zeros
  do not vary (symmetric checkpoints), where it would have no power.

A permutation applied identically to qweight and qzeros moves whole channels consistently
and is invisible to any statistic of one layer's tensors; ``--reference`` catches it.
tests/conformance/test_plausibility.py measures the detection rates.

Wider codes (compressed-tensors' 8-bit groups) have scales 2^(b-4) times finer, so mean(w) / s
and its scatter grow by that factor: d is measured in 4-bit codes (divided by 2^(b-4)). A zero
off by one 8-bit code is then a 1/16 shift, below what this test sees (and what it costs).
"""
from __future__ import annotations

import torch

from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.reader import TensorReader
from awq_harness.conformance.structure import CONFIG_MATCHES_TENSORS, Layer

GPTQ_ZEROS = Rule("gptq.zeros", "GPTQ zero points are representable in the declared checkpoint_format")
SCALES_FINITE = Rule("scales.finite", "scales contain no NaN or inf")
SCALES_POSITIVE = Rule("scales.positive", "scales are > 0")
SCALES_TINY = Rule("scales.tiny", "scales are not all vanishingly small")
SCALES_FP16_RANGE = Rule("scales.fp16-range", "scales fit fp16 (the vLLM awq path runs in fp16)")
ZEROS_RANGE = Rule("zeros.range", "zero points lie in [0, 2^bits - 1]")
FLOATS_FINITE = Rule("floats.finite", "float tensors (embeddings, norms, lm_head, bias) contain no NaN or inf")
NUMERIC_ZERO_OFFSET = Rule("numeric.zero-offset", "codes are centred on their zero point (catches zeros off by one)")
NUMERIC_CODE_ZERO_COHERENCE = Rule("numeric.code-zero-coherence",
                                   "group code means track the zeros (catches a wrong nibble order)")
NUMERIC_ZERO_FILLED = Rule("numeric.zero-filled", "packed code tensors are not zero-filled")

FP16_MAX = 65504.0
TINY_SCALE = 1e-6  # below AWQ's own floor 1e-5 / 15
MAX_OFFSET = 0.5  # codes; well-formed layers measure |median d| < 0.15
BETTER_FIT = 0.8  # an alternative pairing must cut the scatter by 20% to count as a better fit
ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ's interleave; its inverse is (0, 4, 1, 5, 2, 6, 3, 7)
ALTERNATIVE_ORDERS = {"interleave": ORDER, "de-interleave": tuple(ORDER.index(i) for i in range(8))}
MIN_GROUPS = 16
ZERO_WORDS = 0.01


def _f(layer: Layer, rule: Rule, message: str, suffix: str, severity: str | None = None) -> Finding:
    return rule.finding(message, layer.file(), f"{layer.prefix}.{suffix}", severity)


def check_scales(layer: Layer, s: torch.Tensor, z: torch.Tensor, suffix: str,
                 signed: bool = False) -> list[Finding]:
    """``signed``: the format's symmetric scheme stores negative scales (AutoRound ``sym``): a scale
    < 0 is then legal in a group whose zero is the symmetric 2^(b-1), where (q - z) * s is the same
    weight read from the other end of the code range; a scale of 0 never is."""
    s32, out = s.float(), []
    bad = ~torch.isfinite(s32)
    if bad.any():
        out.append(_f(layer, SCALES_FINITE,
                      f"{int(bad.sum())} of {s.numel()} scales are NaN or inf: those groups dequantise to NaN", suffix))
        s32 = torch.where(bad, torch.ones_like(s32), s32)
    nonpos = (s32 == 0) | ((s32 < 0) & (z != 2 ** (layer.bits - 1))) if signed else s32 <= 0
    if nonpos.any():
        out.append(_f(layer, SCALES_POSITIVE,
                      f"{int(nonpos.sum())} scales are <= 0 (min {float(s32.min()):.3g}): those groups collapse "
                      "or flip sign", suffix))
    if s32.numel() and float(s32.abs().median()) < TINY_SCALE:
        out.append(_f(layer, SCALES_TINY,
                      f"median |scale| {float(s32.abs().median()):.2g} < {TINY_SCALE:g}: the layer dequantises to ~0",
                      suffix))
    peak = float((s32.abs() * torch.maximum(z.float(), torch.ones(()))).max()) if s32.numel() else 0.0
    if peak > FP16_MAX:
        out.append(_f(layer, SCALES_FP16_RANGE,
                      f"{s.dtype} scales reach |s|*max(z,1) = {peak:.3g} > 65504: the fp16 kernels (vLLM awq) "
                      "overflow to inf", suffix))
    return out


def check_zeros(layer: Layer, z: torch.Tensor, raw_zp: torch.Tensor | None, v1: bool) -> list[Finding]:
    out, top, half = [], 2 ** layer.bits - 1, 2 ** (layer.bits - 1)
    if raw_zp is not None and raw_zp.dtype == torch.int8 and ((raw_zp < -half) | (raw_zp >= half)).any():
        out.append(_f(layer, ZEROS_RANGE,
                      f"int8 zero points outside [{-half}, {half - 1}] cannot be {layer.bits}-bit codes",
                      "weight_zero_point"))
    elif z.numel() and (int(z.min()) < 0 or int(z.max()) > top + (1 if layer.layout.NAME == "gptq" and v1 else 0)):
        out.append(_f(layer, ZEROS_RANGE,
                      f"zero points span [{int(z.min())}, {int(z.max())}], outside [0, {top}]", layer.layout.ZEROS))
    if layer.layout.NAME == "gptq" and v1 and z.numel() and int(z.max()) == 16:
        out.append(_f(layer, GPTQ_ZEROS, "a v1 stored zero of 15 decodes to 16, which no 4-bit code can sit on: "
                      "an asymmetric zero of 0 overflowed when written (prefer gptq_v2)", "qzeros", "warning"))
    return out


def _spread(d: torch.Tensor) -> float:
    return float((d - d.median()).pow(2).mean().sqrt())


def _repaired(z: torch.Tensor, slots: tuple[int, ...]) -> torch.Tensor:
    """z with its channels permuted within each block of 8 by ``slots``."""
    n = z.shape[0]
    index = (torch.arange(n) // 8) * 8 + torch.tensor(slots).repeat(n // 8)
    return z[index]


def check_symmetric(layer: Layer, z: torch.Tensor, zero_point: bool | None) -> list[Finding]:
    """A symmetric config (zero_point false / sym true / symmetric true) needs every zero at 2^(b-1)
    (8 for 4-bit codes)."""
    middle = 2 ** (layer.bits - 1)
    if zero_point is not False or not z.numel() or bool((z == middle).all()):
        return []
    return [_f(layer, CONFIG_MATCHES_TENSORS, f"config declares symmetric quantisation but zeros span "
               f"[{int(z.min())}, {int(z.max())}] instead of all {middle}: loaders that trust the config drop them",
               layer.layout.ZEROS)]


def plausibility(layer: Layer, q: torch.Tensor, z: torch.Tensor, asymmetric: bool) -> tuple[list[Finding], dict]:
    n, k = q.shape
    groups = z.shape[1]
    if n * groups < MIN_GROUPS:
        return [], {}
    mean_code = q.reshape(n, groups, k // groups).float().mean(-1)
    d = (mean_code - z.float()) / 2 ** (layer.bits - 4)  # in 4-bit codes: mean(w) / s grows with 2^bits
    offset, spread = float(d.median()), _spread(d)
    alternatives = {name: _spread(mean_code - _repaired(z, slots).float())
                    for name, slots in ALTERNATIVE_ORDERS.items()} if asymmetric and n % 8 == 0 else {}
    best = min(alternatives, key=alternatives.get) if alternatives else None
    stats = {"offset": offset, "spread": spread, "best_alternative": alternatives.get(best, float("nan"))}
    out = []
    if abs(offset) > MAX_OFFSET:
        out.append(_f(layer, NUMERIC_ZERO_OFFSET,
                      f"group codes sit {offset:+.2f} codes from their zeros (well-formed: ~0): {_offset_hint(layer)}",
                      layer.layout.ZEROS))
    if best and alternatives[best] < BETTER_FIT * spread:
        out.append(_f(layer, NUMERIC_CODE_ZERO_COHERENCE,
                      f"the zeros fit the codes far better after a {best} nibble reshuffle "
                      f"(scatter {alternatives[best]:.2f} vs {spread:.2f} codes as stored): {layer.layout.PACKED} and "
                      f"{layer.layout.ZEROS} were packed in different nibble orders", layer.layout.PACKED))
    return out, stats


def _offset_hint(layer: Layer) -> str:
    if layer.layout.NAME == "gptq":
        return "near -1, a gptq_v2 file labelled checkpoint_format 'gptq' (v1 adds 1); near +1, the reverse"
    return f"near +1, zeros stored one too low (GPTQ-v1 'z - 1' in a {layer.layout.NAME} file); near -1, one too high"


def zero_words(layer: Layer, reader: TensorReader) -> list[Finding]:
    info = layer.infos[layer.layout.PACKED]
    zeros = counted = 0
    for c in reader.chunks(info):  # a remote reader yields sampled windows only
        zeros, counted = zeros + int(c.numel() - torch.count_nonzero(c)), counted + c.numel()
    if counted and zeros / counted > ZERO_WORDS:
        return [_f(layer, NUMERIC_ZERO_FILLED,
                   f"{zeros / counted:.1%} of packed words are 0 (all eight codes 0): zero-filled or lost data",
                   layer.layout.PACKED)]
    return []


def _non_finite(chunk: torch.Tensor) -> int:
    """Count NaN/inf; one fast min/max pass (NaN and inf propagate) decides if counting is needed."""
    try:
        low, high = torch.aminmax(chunk)
        if bool(torch.isfinite(low)) and bool(torch.isfinite(high)):
            return 0
    except (RuntimeError, TypeError):  # dtypes without a min/max kernel (float8)
        chunk = chunk.float()
    return int(chunk.numel() - torch.isfinite(chunk).sum())


def check_floats(info, reader: TensorReader) -> list[Finding]:
    bad = sum(_non_finite(chunk) for chunk in reader.chunks(info) if chunk.numel())
    if bad:
        return [FLOATS_FINITE.finding(f"{bad} of {info.numel} values are NaN or inf",
                                      info.path.name, info.name)]
    return []
