"""Every family end to end as a user runs it: ``quantize`` (awq / rtn / gptq) -> ``verify --reference``
(weights, fold consistency, functional check), and the fold-consistency rule's seeded defects:
a Gemma norm folded as if it multiplied by w, a norm rescaled without its readers, a float
reader kept out of quantisation but not compensated.

The default run takes one method per new family; the whole matrix is ``slow``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.data.tiny import FAMILIES
from awq_harness.conformance import verify
from tests.conformance.family_runs import (
    METHODS,
    assert_conforms_and_functions,
    edited_copy,
    float_model,
    fold_findings,
    quantized,
)

NEW = ("qwen3", "gemma", "gemma2", "phi3")
FAST = [("gemma2", "awq"), ("phi3", "awq")]
SLOW = [(f, m) for f in FAMILIES for m in METHODS if (f, m) not in FAST]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


def _end_to_end(root: Path, family: str, method: str) -> None:
    report = verify(quantized(root, family, method), reference=float_model(root, family))
    assert_conforms_and_functions(report)
    assert len(report.functional["layers"]) == 2


@pytest.mark.parametrize("family, method", FAST)
def test_quantize_verify_and_functional_check(root, family, method):
    _end_to_end(root, family, method)


@pytest.mark.slow
@pytest.mark.parametrize("family, method", SLOW)
def test_quantize_verify_and_functional_check_whole_matrix(root, family, method):
    _end_to_end(root, family, method)


@pytest.mark.parametrize("norm, readers", [
    ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
    ("pre_feedforward_layernorm", ("mlp.gate_proj", "mlp.up_proj"))])
def test_gemma_norm_folded_as_w_is_caught(root, tmp_path, norm, readers):
    """A tool that divides Gemma's w by s leaves (1 + w / s), not (1 + w) / s: the quantised readers
    carry s, the norm implies about none (w is small on most channels). How visible that is depends
    on how far AWQ's scales spread: layer 0's spread enough; a norm whose scales all lie within a
    few tens of percent of each other can pass (the rule's quantile tolerance)."""
    good, fp = quantized(root, "gemma2", "awq"), float_model(root, "gemma2")
    name = f"model.layers.0.{norm}.weight"
    w_ref = load_file(fp / "model.safetensors")[name].double()

    def as_if_w(t):
        s = (1 + w_ref) / (1 + t[name].double())
        t[name] = (w_ref / s).to(t[name].dtype)

    found = fold_findings(edited_copy(good, tmp_path / "as-w", as_if_w), fp)
    assert found and {f.tensor for f in found} <= {f"model.layers.0.{r}" for r in readers}
    assert all(f.severity == "error" and "1 + w" in f.message for f in found)


def test_phi3_fused_reader_uncompensated_is_caught(root, tmp_path):
    """The fused gate_up_proj reads post_attention_layernorm: a norm divided by scales its reader never saw."""
    good, fp = quantized(root, "phi3", "awq"), float_model(root, "phi3")
    name = "model.layers.1.post_attention_layernorm.weight"
    s = torch.linspace(0.5, 2.0, 128)[torch.randperm(128, generator=torch.Generator().manual_seed(3))]
    found = fold_findings(edited_copy(good, tmp_path / "norm-only", lambda t: t.update({name: t[name] / s.half()})), fp)
    assert [f.tensor for f in found] == ["model.layers.1.mlp.gate_up_proj"]


KEPT = "model.layers.0.mlp.gate_proj"


def test_float_reader_kept_in_float_must_be_folded(root, tmp_path):
    """A linear kept in float beside quantised neighbours reads the folded norm: the checkpoint's folded
    copy passes; the reference's unfolded weight in its place (an uncompensated reader, as a router
    or shared-expert gate left untouched) is caught."""
    fp = float_model(root, "qwen3")
    good = quantized(root, "qwen3", "awq", "--keep-layers", KEPT)
    config = json.loads((good / "config.json").read_text())
    assert KEPT in json.dumps(config["quantization_config"]["modules_to_not_convert"])
    assert f"{KEPT}.weight" in load_file(good / "model.safetensors")
    assert not fold_findings(good, fp)
    w_ref = load_file(fp / "model.safetensors")[f"{KEPT}.weight"]
    bad = edited_copy(good, tmp_path / "unfolded", lambda t: t.update({f"{KEPT}.weight": w_ref.half()}))
    (finding,) = fold_findings(bad, fp)
    assert finding.tensor == KEPT and "not compensated" in finding.message


def test_unsupported_family_is_functional_skipped_not_internal(root, tmp_path):
    """A conforming checkpoint of a family awq_ref has no entry for: weights compared, the
    functional check skipped with the reason, exit 0."""
    good, fp = quantized(root, "gemma", "rtn"), float_model(root, "gemma")
    ckpt, ref = tmp_path / "ckpt", tmp_path / "ref"
    shutil.copytree(good, ckpt)
    shutil.copytree(fp, ref)
    for folder in (ckpt, ref):
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = ["GemmaNextForCausalLM"]
        (folder / "config.json").write_text(json.dumps(config))
    report = verify(ckpt, reference=ref)
    (skipped,) = report.of_rule("functional.skipped")
    assert "GemmaNextForCausalLM" in skipped.message and skipped.severity == "info"
    assert not report.of_rule("verifier.internal") and report.exit_code() == 0
    assert report.of_rule("reference.error")  # the weights were still compared
