"""A mixed 4/8-bit compressed-tensors checkpoint, written by ``quantize --format compressed-tensors``
from an 8-bit plan: layer 1 whole and layer 0's down_proj at 8 bits, the rest at 4 bits."""
from __future__ import annotations

import json
from pathlib import Path

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model

EIGHT_BIT_LAYERS = [1]
EIGHT_BIT_LINEARS = ["model.layers.0.mlp.down_proj"]


def write_plan(path: Path, layers=EIGHT_BIT_LAYERS, linears=EIGHT_BIT_LINEARS, keep_as: str = "8bit") -> Path:
    """A plan file in ``awq-harness plan --json``'s shape."""
    path.write_text(json.dumps({"plan": {"keep_layers": list(layers), "keep_linears": list(linears),
                                         "keep_as": keep_as}}))
    return path


def make_ct_mixed(out: Path, float_model: Path, method: str = "rtn", extra: tuple[str, ...] = ()) -> Path:
    if not float_model.exists():
        save_tiny_model(float_model, "llama", seed=0)
    plan = write_plan(out.parent / f"{out.name}-plan.json")
    code = main(["quantize", "--model", str(float_model), "--method", method, "--format", "compressed-tensors",
                 "--keep-layers", str(plan), "--out", str(out), *extra])
    if code != 0:
        raise RuntimeError(f"quantize exited {code}")
    return out
