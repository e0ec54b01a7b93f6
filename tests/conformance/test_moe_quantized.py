"""Mixture-of-experts families end to end: ``quantize`` (awq / rtn / gptq) one decoder layer at a time
-> ``verify --reference`` (weights, MoE rules, fold consistency, functional check), and the
fold-consistency rule on seeded defects of real MoE checkpoints: a router, a shared-expert gate, or
the shared expert's linears left uncompensated after the post-attention norm was divided by the
AWQ scales.

The default run quantises Qwen2-MoE (router, shared expert and its gate) with AWQ on a coarse grid;
the whole matrix is ``slow``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import MOE_FAMILIES
from awq_harness.conformance import verify
from tests.conformance import family_runs
from tests.conformance.family_runs import (
    METHODS,
    assert_conforms_and_functions,
    edited_copy,
    float_model,
    fold_findings,
)

FAST = [("qwen2_moe", "awq")]
SLOW = [(f, m) for f in MOE_FAMILIES for m in METHODS if (f, m) not in FAST]
BLOCK = {"mixtral": "block_sparse_moe", "qwen2_moe": "mlp", "qwen3_moe": "mlp"}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("moe")


def quantized(root: Path, family: str, method: str) -> Path:
    return family_runs.quantized(root, family, method, *(["--n-grid", "5"] if method == "awq" else []))


def _end_to_end(root: Path, family: str, method: str) -> None:
    ckpt = quantized(root, family, method)
    tensors = load_file(ckpt / "model.safetensors")
    block = f"model.layers.1.{BLOCK[family]}"
    assert f"{block}.experts.3.{'w2' if family == 'mixtral' else 'down_proj'}.qweight" in tensors
    assert tensors[f"{block}.gate.weight"].is_floating_point()  # the router stays float
    if METHODS[method] == "gemm":
        kept = json.loads((ckpt / "config.json").read_text())["quantization_config"]["modules_to_not_convert"]
        assert f"{BLOCK[family]}.gate" in kept
    report = verify(ckpt, reference=float_model(root, family))
    assert_conforms_and_functions(report)  # GPTQ too: the functional check reads every layout
    assert not [f for f in report.findings if f.rule.startswith("moe.")]


@pytest.mark.parametrize("family, method", FAST)
def test_moe_quantize_verify_and_functional_check(root, family, method):
    _end_to_end(root, family, method)


@pytest.mark.slow
@pytest.mark.parametrize("family, method", SLOW)
def test_moe_quantize_verify_whole_matrix(root, family, method):
    _end_to_end(root, family, method)


def _reference_float(fp: Path, name: str):
    return load_file(fp / "model.safetensors")[name].half()


def test_router_left_uncompensated_is_caught(root, tmp_path):
    """The norm was divided by s, the router kept the reference's weight: its logits change."""
    good, fp = quantized(root, "qwen2_moe", "awq"), float_model(root, "qwen2_moe")
    router = "model.layers.1.mlp.gate.weight"
    bad = edited_copy(good, tmp_path / "router", lambda t: t.update({router: _reference_float(fp, router)}))
    (finding,) = fold_findings(bad, fp)
    assert finding.tensor == "model.layers.1.mlp.gate" and "not compensated" in finding.message


def test_shared_expert_gate_left_uncompensated_is_caught(root, tmp_path):
    good, fp = quantized(root, "qwen2_moe", "awq"), float_model(root, "qwen2_moe")
    gate = "model.layers.0.mlp.shared_expert_gate.weight"
    bad = edited_copy(good, tmp_path / "shared-gate", lambda t: t.update({gate: _reference_float(fp, gate)}))
    (finding,) = fold_findings(bad, fp)
    assert finding.tensor == "model.layers.0.mlp.shared_expert_gate"


def test_shared_expert_left_uncompensated_is_caught(root, tmp_path):
    """The shared expert's gate/up quantised from the unscaled weights (RTN's packed tensors, as a tool
    that scales only the routed experts writes them) while the norm carries the AWQ scales."""
    good, fp = quantized(root, "qwen2_moe", "awq"), float_model(root, "qwen2_moe")
    unscaled = load_file(quantized(root, "qwen2_moe", "rtn") / "model.safetensors")
    shared = [n for n in unscaled if ".layers.1.mlp.shared_expert." in n and ("gate_proj" in n or "up_proj" in n)]
    bad = edited_copy(good, tmp_path / "shared", lambda t: t.update({n: unscaled[n] for n in shared}))
    found = {f.tensor for f in fold_findings(bad, fp)}
    assert found == {"model.layers.1.mlp.shared_expert.gate_proj", "model.layers.1.mlp.shared_expert.up_proj"}


KEPT_EXPERT = [f"model.layers.1.mlp.experts.2.{p}" for p in ("gate_proj", "up_proj", "down_proj")]


def test_an_expert_kept_in_float_is_folded_and_judged_so(root, tmp_path):
    """An expert kept float (``--keep-layers``, as a group plan proposes) is stored in the layer's AWQ
    basis: its gate/up carry the norm's scales, its up_proj rows its own down group's. The fold rule
    accepts it (one factor per row for an up_proj); the reference's unfolded up_proj in its place is
    caught. (moe.experts-complete still reports the layer's mixed formats: vLLM's fused MoE takes one.)"""
    fp = float_model(root, "qwen2_moe")
    out = tmp_path / "kept"
    assert main(["quantize", "--model", str(fp), "--method", "awq", "--format", "gemm", "--group-size", "64",
                 "--calib-samples", "8", "--seqlen", "64", "--n-grid", "5", "--keep-layers", ",".join(KEPT_EXPERT),
                 "--out", str(out)]) == 0
    kept = json.loads((out / "config.json").read_text())["quantization_config"]["modules_to_not_convert"]
    assert set(KEPT_EXPERT) <= set(kept)
    assert not fold_findings(out, fp)
    up = KEPT_EXPERT[1] + ".weight"
    bad = edited_copy(out, tmp_path / "unfolded", lambda t: t.update({up: _reference_float(fp, up)}))
    (finding,) = fold_findings(bad, fp)
    assert finding.tensor == KEPT_EXPERT[1]
