"""Third-party goldens (AutoAWQ, GPTQModel, ...): our loader reproduces the tool's own numbers."""
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.conformance.dequantized import load_dequantized
from awq_harness.golden.third_party import EXPECTED, PROVENANCE, ROOT, TOKEN_IDS, checkpoint, names

AWQ_GOLDENS = [n for n in names() if json.loads((checkpoint(n) / "config.json").read_text())
               ["quantization_config"]["quant_method"] == "awq"]
# Logit tolerance against each tool's own forward, relative to max |logit|: AutoAWQ's naive
# path computes in fp16; GPTQModel's CPU kernel at about bf16 precision (see tests/peers).
LOGIT_RTOL = {"autoawq": 5e-3, "gptqmodel": 2e-2, "llmcompressor": 2e-2, "auto-round": 2e-2}


def test_third_party_goldens_are_present_with_provenance():
    assert {"autoawq-gemm", "gptqmodel-awq-gemm"} <= set(names())
    for name in names():
        prov = json.loads((ROOT / name / PROVENANCE).read_text())
        assert prov["tool"] in prov["versions"] or prov["tool"] in ("autoawq",)
        assert prov["command"].endswith(name) and prov["token_ids"] == TOKEN_IDS


@pytest.mark.parametrize("name", AWQ_GOLDENS)
def test_our_loader_gives_exactly_the_tools_dequantised_weights(name):
    expected = load_file(ROOT / name / EXPECTED)
    model = load_checkpoint(checkpoint(name))
    quantised = {n: m for n, m in model.named_modules() if isinstance(m, AwqLinear)}
    assert sorted(f"dequantized.{n}" for n in quantised) == sorted(k for k in expected if k != "logits")
    for module_name, module in quantised.items():
        theirs = expected[f"dequantized.{module_name}"]
        assert torch.equal(module.dequantized_weight().to(theirs.dtype), theirs), module_name


@pytest.mark.parametrize("name", names())
def test_our_forward_matches_the_tools_logits(name):
    tool = json.loads((ROOT / name / PROVENANCE).read_text())["tool"]
    theirs = load_file(ROOT / name / EXPECTED)["logits"]
    load = load_checkpoint if name in AWQ_GOLDENS else load_dequantized  # compressed-tensors: decode path
    with torch.no_grad():
        ours = load(checkpoint(name))(torch.tensor([TOKEN_IDS])).logits
    assert (ours - theirs).abs().max() <= LOGIT_RTOL[tool] * theirs.abs().max()
    assert (ours.argmax(-1) == theirs.argmax(-1)).float().mean() >= 0.9
