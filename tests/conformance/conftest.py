"""Session-built tiny checkpoints (built once, copied per test) for the conformance tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from awq_harness import golden
from awq_harness.awq_ref.formats import gptq
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.conformance.ct_mixed import make_ct_mixed
from tests.conformance.helpers import gptq_config, make_checkpoint, relayout, save_float_reference
from tests.conformance.moe_checkpoint import make_moe_checkpoint

SHARD_BYTES = 300_000  # splits a tiny llama into a few shards, so index rules are exercised


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    from awq_harness.conformance.convert import convert

    root = tmp_path_factory.mktemp("conformance-built")
    out = {"gemm": make_checkpoint(root / "gemm", spec=QuantSpec(4, 64), max_shard_bytes=SHARD_BYTES),
           "reference": save_float_reference(root / "reference")}
    out["ct"] = convert(out["gemm"], root / "ct", "compressed-tensors")
    out["moe"] = make_moe_checkpoint(out["gemm"], root / "moe")
    out["gptq"] = relayout(out["gemm"], root / "gptq", gptq, gptq_config(64, v2=True), checkpoint_format="gptq_v2")
    out["ct-mixed"] = make_ct_mixed(root / "ct-mixed", root / "ct-mixed-float")
    out["ct-actorder"] = golden.path("llama-ct-g64-actorder-gptq")  # fresh() copies it before damage
    return out


@pytest.fixture
def fresh(built, tmp_path):
    """fresh(kind) -> a private copy of a built checkpoint that a test may damage."""
    def copy(kind: str = "gemm") -> Path:
        dst = tmp_path / kind
        shutil.copytree(built[kind], dst, symlinks=True)
        return dst
    return copy
