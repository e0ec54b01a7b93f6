"""Each family's scaling groups (``awq_ref.model.arch``) name the modules AutoAWQ 0.2.9 and
llm-compressor 0.14 scale together, and in float32 our scales equal AutoAWQ's.

Where the tools differ from each other or from the algorithm (see the arch docstring):
  * v_proj -> o_proj: AutoAWQ keeps it when the two weights have equal shapes, llm-compressor
    when v's outputs are o's inputs; on these tiny models (GQA, or full attention) both agree.
  * Phi-3 qkv_proj -> o_proj: both tools fold it for every Phi-3 by dividing the *last* rows of
    qkv_proj; that is v alone only without GQA (the tiny Phi-3 has full attention; with GQA the
    fold touches k and q, so ours drops the group there: tests/awq_ref/model/test_arch_groups.py).
  * Gemma norms: AutoAWQ folds (1 + w) / s - 1; llm-compressor 0.14 divides w itself
    (``_smooth``: ``module.weight.div_(scales)`` for any 1-D smooth layer), which changes the
    function of every Gemma / Gemma 2 / Gemma 3 model it smooths; ``verify --reference`` reports it
    as reference.fold-consistency (tests/conformance/test_families.py seeds that very fold).
  * Gemma 3: llm-compressor omits input_layernorm -> q,k,v (q/k norms); AutoAWQ has no Gemma 3.
"""
from __future__ import annotations

import collections
import re

import pytest
import torch

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.model.arch import decoder_layers, scaling_groups
from tests.peers import awq_peers

pytestmark = pytest.mark.peers
AUTOAWQ_CLASSES = {"llama": "LlamaAWQForCausalLM", "qwen2": "Qwen2AWQForCausalLM", "opt": "OptAWQForCausalLM",
                   "qwen3": "Qwen3AWQForCausalLM", "gemma": "GemmaAWQForCausalLM", "gemma2": "Gemma2AWQForCausalLM",
                   "phi3": "Phi3AWQForCausalLM"}
LLMC_FAMILIES = ("llama", "qwen2", "qwen3", "gemma2", "phi3")
SCALE_FAMILIES = ("qwen3", "gemma", "gemma2", "phi3")


def _ours(model, layer) -> list[tuple[str, tuple[str, ...]]]:
    return [(g.prev, g.balance) for g in scaling_groups(model, layer)]


@pytest.mark.parametrize("family", sorted(AUTOAWQ_CLASSES))
def test_scaling_groups_name_autoawqs_modules(family):
    awq_models = pytest.importorskip("awq.models", reason="AutoAWQ 0.2.9: tox -e peers")
    model = tiny_model(family)
    layer = decoder_layers(model)[0]
    names = {id(m): n for n, m in layer.named_modules()}
    features = collections.defaultdict(lambda: torch.zeros(1))
    groups = getattr(awq_models, AUTOAWQ_CLASSES[family]).get_layers_for_scaling(layer, features, {})
    theirs = [(names[id(g["prev_op"])], tuple(names[id(m)] for m in g["layers"])) for g in groups]
    assert theirs == _ours(model, layer)


def _resolve(pattern: str, names: list[str]) -> list[str]:
    if pattern.startswith("re:"):
        return [n for n in names if re.match(pattern[3:], n)]
    return [n for n in names if n == pattern]


@pytest.mark.parametrize("family", LLMC_FAMILIES)
def test_scaling_groups_name_llm_compressors_modules(family):
    mappings = pytest.importorskip("llmcompressor.modifiers.transform.awq.mappings", reason="tox -e peers")
    model = tiny_model(family)
    layer = decoder_layers(model)[0]
    names = [n for n, _ in layer.named_modules() if n]
    theirs = []
    for m in mappings.AWQ_MAPPING_REGISTRY[type(model).__name__]:
        (smooth,) = _resolve(m.smooth_layer, names)
        balance = tuple(n for pattern in m.balance_layers for n in _resolve(pattern, names))
        prev = layer.get_submodule(smooth)
        if isinstance(prev, torch.nn.Linear) and prev.out_features < layer.get_submodule(balance[0]).in_features:
            continue  # llm-compressor skips a linear -> linear mapping whose widths do not meet
        if smooth.endswith(".v_proj") and prev.weight.shape != layer.get_submodule(balance[0]).weight.shape:
            continue  # AutoAWQ's (and our) v -> o rule: equal weight shapes
        theirs.append((smooth, balance))
    assert theirs == _ours(model, layer)


@pytest.fixture(scope="module")
def blocks():
    from awq_harness.awq_ref.data.calibration import calibration_blocks
    from awq_harness.awq_ref.data.tiny import tiny_tokenizer

    return calibration_blocks(tiny_tokenizer(), 8, 128)


@pytest.mark.parametrize("family", SCALE_FAMILIES)
def test_every_scaling_group_gets_autoawqs_scales(family, blocks, tmp_path):
    pytest.importorskip("awq", reason="AutoAWQ 0.2.9: tox -e peers")
    from awq_harness.awq_ref.data.tiny import save_tiny_model
    from awq_harness.awq_ref.methods.awq import AwqSearchConfig

    folder = save_tiny_model(tmp_path / "fp", family, seed=31)
    theirs = awq_peers.run_autoawq(folder, blocks, 64, torch.float32, tmp_path / "autoawq", record=True).choices
    ours = awq_peers.run_ours(folder, blocks, 64, tmp_path / "ours", AwqSearchConfig(compute_dtype="float32")).choices
    assert sorted(theirs["scales"]) == sorted(ours["scales"])
    for key, scales in theirs["scales"].items():
        torch.testing.assert_close(ours["scales"][key].float(), scales, rtol=1e-5, atol=0, msg=f"group {key}")
