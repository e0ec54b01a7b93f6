"""Functional check against the float model: run both side by side, one decoder layer at a time.

Weight comparison cannot judge an AWQ checkpoint (the search folds per-channel scales into
the previous norm or linear), so this compares what the layers *compute*: per layer, the
relative error and SQNR of the hidden states (isolated: fed the float input; accumulated:
the quantised model's own path), and both models' end-to-end perplexity on held-out text
(the reference's tokenizer on the Austen evaluation split; seeded random ids when the
reference has no tokenizer). See ``awq_ref.mixed_precision.layerwise``.

Rules and their default thresholds:
  functional.perplexity  ratio ppl_q / ppl_fp: warning above 1.10, error above 1.50. A
                         healthy 4-bit AWQ or RTN checkpoint sits below 1.25 on the default
                         model; 1.5 means the model has lost much of what it knew.
  functional.layer-jump  warning when a layer's isolated error exceeds 3x the median of its
                         neighbours (2 on each side) and 0.05: one layer broke, not the format.
  functional.skipped     info: the check could not run (a format it cannot load, structural
                         errors, or a model family awq_ref does not know: the reference's
                         ``architectures`` has no entry in ``awq_ref.model.arch``).
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from awq_harness.conformance.findings import Finding, Rule

FUNCTIONAL_PERPLEXITY = Rule("functional.perplexity",
                             "with --reference: perplexity of the quantised model within a ratio of the float one")
FUNCTIONAL_SKIPPED = Rule("functional.skipped", "with --reference: the functional check could not run "
                          "(format or model not supported)", "info")
FUNCTIONAL_LAYER_JUMP = Rule("functional.layer-jump",
                             "with --reference: no layer's hidden-state error jumps against its neighbours", "warning")

PPL_WARNING, PPL_ERROR = 1.10, 1.50
JUMP_FACTOR, JUMP_FLOOR = 3.0, 0.05
RANDOM_VOCAB_FALLBACK = 512


def _windows(reference: str, windows: int, seqlen: int) -> torch.Tensor:
    from awq_harness.awq_ref.data.corpus import eval_text
    from awq_harness.awq_ref.data.models import load_tokenizer
    from awq_harness.awq_ref.eval.perplexity import make_windows, tokenize_text

    folder = Path(reference)
    if (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file():
        return make_windows(tokenize_text(load_tokenizer(reference), eval_text()), seqlen, windows)
    vocab = json.loads((folder / "config.json").read_text()).get("vocab_size", RANDOM_VOCAB_FALLBACK)
    return torch.randint(0, vocab, (windows, seqlen), generator=torch.Generator().manual_seed(0))


def layer_jumps(errors: list[float]) -> list[int]:
    jumps = []
    for i, err in enumerate(errors):
        neighbours = errors[max(0, i - 2):i] + errors[i + 1:i + 3]
        if neighbours and err > JUMP_FLOOR and err > JUMP_FACTOR * statistics.median(neighbours):
            jumps.append(i)
    return jumps


def _first_broken(rows) -> int | None:
    """The first layer whose accumulated output is further from the float one than 50%."""
    return next((r.layer for r in rows if r.accumulated_rel_error > 0.5), None)


def unsupported_family(reference: str) -> str | None:
    """Why the float model cannot be run layer by layer, or None: its config names no
    architecture awq_ref has an entry for."""
    from awq_harness.awq_ref.model.arch import ARCHITECTURES

    try:
        config = json.loads((Path(reference) / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the reference's own findings say why
    names = config.get("architectures") if isinstance(config, dict) else None
    names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    if any(n in ARCHITECTURES for n in names):
        return None
    return (f"model family {'/'.join(names) or '(no architectures in config.json)'} is not one awq_ref "
            f"can run layer by layer (it knows {', '.join(sorted(ARCHITECTURES))})")


def functional_check(path: str, reference: str, windows: int = 2, seqlen: int = 256,
                     device: torch.device | None = None) -> tuple[list[Finding], dict | None]:
    """``device``: where each layer pair runs (None: the CPU)."""
    from awq_harness.awq_ref.mixed_precision.layerwise import compare_layerwise

    why = unsupported_family(reference)
    if why is not None:
        return [FUNCTIONAL_SKIPPED.finding(f"functional check not run: {why}", "config.json")], None
    extra = {} if device is None else {"device": device}
    report = compare_layerwise(str(reference), str(path), _windows(reference, windows, seqlen), **extra)
    ratio, findings = report.ppl_ratio, []
    severity = "error" if not ratio <= PPL_ERROR else "warning" if ratio > PPL_WARNING else "info"
    first = _first_broken(report.layers)
    findings.append(FUNCTIONAL_PERPLEXITY.finding(
        f"perplexity {report.ppl_quantized:.3f} vs float {report.ppl_reference:.3f} (x{ratio:.3f}; "
        f"warning above x{PPL_WARNING}, error above x{PPL_ERROR}) on {windows} x {seqlen} held-out tokens"
        + (f"; the quantised path first departs from the float one at layer {first}" if first is not None else ""),
        severity=severity))
    isolated = [r.isolated_rel_error for r in report.layers]
    for i in layer_jumps(isolated):
        findings.append(FUNCTIONAL_LAYER_JUMP.finding(
            f"isolated hidden-state error {isolated[i]:.4f} is over {JUMP_FACTOR:g}x "
            f"its neighbours'", tensor=f"layer {i}"))
    return findings, report.to_json()
