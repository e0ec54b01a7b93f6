"""Tiny seeded checkpoints that sit on either side of the verifier's loader claims.

Each variant is a one-layer tiny Llama (hidden 128, grouped-query attention: q_proj out 128,
k/v_proj out 64) quantised with RTN, saved as AutoAWQ GEMM and then, if asked, re-laid out
(GEMV, compressed-tensors, GPTQ v1) or edited. The GEMM checkpoint it came from is kept as
the reference: every layout stores the same codes, zeros and scales.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.formats import awq_gemv, gptq
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.conformance.helpers import edit_config, gptq_config, relayout

SEED, HIDDEN, LAYERS = 0, 128, 1


@dataclass(frozen=True)
class Variant:
    name: str
    group: int = 64
    zero_point: bool = True
    intermediate: int = 256
    layout: str = "gemm"  # gemm | gemv | ct | gptq
    family: str = "llama"
    edit: Callable[[Path], None] | None = None


def _gemm(v: Variant, out: Path) -> Path:
    spec = QuantSpec(4, v.group, v.zero_point)
    model = tiny_model(v.family, SEED, hidden=HIDDEN, intermediate=v.intermediate, layers=LAYERS)
    quantize_model(model, "rtn", QuantizeRequest(spec, "gemm"))
    return save_checkpoint(model, out, AwqConfig(spec, "gemm"))


def _awq_config(v: Variant, version: str) -> dict:
    return {"quant_method": "awq", "bits": 4, "group_size": v.group, "zero_point": v.zero_point,
            "version": version, "modules_to_not_convert": None}


def _relaid(v: Variant, source: Path, out: Path) -> Path:
    if v.layout == "gemv":
        return relayout(source, out, awq_gemv, _awq_config(v, "gemv"))
    if v.layout == "gptq":
        return relayout(source, out, gptq, gptq_config(v.group) | {"sym": not v.zero_point})
    if v.layout == "ct":
        from awq_harness.conformance.convert import convert
        return convert(source, out, "compressed-tensors")
    shutil.copytree(source, out)
    return out


def build(v: Variant, root: Path) -> tuple[Path, Path]:
    """(the variant's folder, the GEMM folder with the same codes) under ``root``."""
    source = _gemm(v, root / f"{v.name}-source")
    folder = _relaid(v, source, root / v.name)
    if v.edit is not None:
        v.edit(folder)
    return folder, source


def set_quant_keys(**values) -> Callable[[Path], None]:
    """An edit that sets keys of quantization_config (value None removes the key)."""
    def edit(folder: Path) -> None:
        def apply(cfg: dict) -> None:
            q = cfg["quantization_config"]
            for key, value in values.items():
                q.pop(key, None) if value is None else q.__setitem__(key, value)
        edit_config(folder, apply)
    return edit


def quantise_lm_head(folder: Path) -> None:
    """Pack lm_head as a GEMM layer (g64) without declaring it, as the seeded defect does."""
    from tests.conformance.defects import DEFECTS

    next(d for d in DEFECTS if d.name == "quantised lm_head, undeclared").damage(folder)

