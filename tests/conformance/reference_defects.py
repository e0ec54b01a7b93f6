"""Seeded defects for the rules that need more than a damaged checkpoint: ``--reference``
(reference.*, functional.*: the checkpoint, its float reference, or both are damaged) and
verifier.internal (a verifier function made to raise, since no input is known to make the
verifier fail). Same ``Defect`` shape as defects.py; test_defects.py runs both tables.

The tiny reference model is random, so its perplexity is near the vocabulary size whatever
its layers do: functional.perplexity needs the output head itself damaged to move it.
"""

from __future__ import annotations

from pathlib import Path

from tests.conformance.defects import Defect, intact
from tests.conformance.helpers import Q_PROJ, edit_tensors, repack_natural


def _shuffle_channels(prefix: str):
    """Codes and zeros of every layer under ``prefix`` re-packed in natural nibble order: whole
    output channels move together, so the file stays self-consistent and only the reference sees it."""

    def damage(d: Path) -> None:
        edit_tensors(d, lambda t: (repack_natural(t, "qweight", only=prefix), repack_natural(t, "qzeros", only=prefix)))

    return damage


def _drop_reference_q_proj(reference: Path) -> None:
    edit_tensors(reference, lambda t: t.pop(f"{Q_PROJ}.weight"))


def _scale_lm_head(d: Path) -> None:
    edit_tensors(
        d, lambda t: t.update({"lm_head.weight": t["lm_head.weight"] * 100}) if "lm_head.weight" in t else None
    )


POST_NORM = "model.layers.1.post_attention_layernorm.weight"


def _rescale_norm_only(d: Path) -> None:
    """The norm divided by scales in [0.5, 2] while its readers (gate_proj, up_proj) keep their weights:
    what a tool does when it folds a scale into the norm and forgets the linears that read it."""
    import torch

    s = torch.linspace(0.5, 2.0, 128)[torch.randperm(128, generator=torch.Generator().manual_seed(0))]
    edit_tensors(d, lambda t: t.update({POST_NORM: (t[POST_NORM].float() / s).to(t[POST_NORM].dtype)})
                 if POST_NORM in t else None)


REFERENCE_DEFECTS = [
    Defect(
        "a norm rescaled, its readers not",
        "reference.fold-consistency",
        _rescale_norm_only,
        reference=intact,
        where="model.layers.1.mlp.gate_proj",
    ),
    Defect(
        "q_proj channels shuffled consistently",
        "reference.error",
        _shuffle_channels(Q_PROJ),
        reference=intact,
        where=Q_PROJ,
    ),
    Defect(
        "reference lacks q_proj.weight", "reference.missing", intact, reference=_drop_reference_q_proj, where=Q_PROJ
    ),
    Defect(
        "lm_head stored 100x too large",
        "functional.perplexity",
        _scale_lm_head,
        reference=intact,
        where="error above x1.5",
    ),
    Defect(
        "layer 1 channels shuffled consistently",
        "functional.layer-jump",
        _shuffle_channels("model.layers.1."),
        reference=intact,
        severity="warning",
        where="layer 1",
    ),
    Defect(
        "a checkpoint with a structural error, with --reference",
        "functional.skipped",
        lambda d: edit_tensors(d, lambda t: t.pop(f"{Q_PROJ}.scales", None)),
        reference=intact,
        severity="info",
        exit_code=None,
        where="errors",
    ),
    Defect(
        "mixed 4/8-bit compressed-tensors with --reference (runs on its dequantised weights)",
        "functional.perplexity",
        intact,
        base="ct-mixed",
        reference=intact,
        severity="info",
        exit_code=0,
        where="held-out tokens",
    ),
    Defect(
        "float check raises (seeded verifier bug)",
        "verifier.internal",
        intact,
        fault="awq_harness.conformance.numeric.check_floats",
        where="model.norm.weight",
    ),
]
