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
  * Gemma 3: llm-compressor omits input_layernorm -> q,k,v (q/k norms; LLMC_OMITS); AutoAWQ has no Gemma 3.
  * MoE (Mixtral, Qwen3-MoE in AutoAWQ; Qwen2-MoE, Qwen3-MoE in llm-compressor; AutoAWQ has no
    Qwen2-MoE, llm-compressor no Mixtral mapping, so Mixtral falls to its Llama default, whose
    gate_proj/up_proj patterns match no w1/w3): the balance linears agree, every expert's gate and up
    against the post-attention norm and one up -> down group per expert. The norm's other readers
    differ, and only ours is the exact fold:
      - AutoAWQ divides the norm and scales the experts but never touches the router (``gate``):
        the router's logits change after the fold, so routing changes (the seeded defect that
        reference.fold-consistency reports on real MoE checkpoints, tests/conformance/test_moe_quantized.py);
      - llm-compressor lists the router (``mlp.gate``) among the balance layers, so it is
        compensated (and its rows count in the duo weight statistic, ours: compensated only, its
        float weight is no quantisation error to balance);
      - llm-compressor's Qwen2-MoE mapping names neither the shared expert's gate/up nor the
        shared-expert gate: both read the divided norm uncompensated (the shared-expert defects).
    Ours: balance = experts (+ shared expert's gate/up), compensate = router (+ shared-expert gate).
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
                   "phi3": "Phi3AWQForCausalLM", "mixtral": "MixtralAWQForCausalLM",
                   "qwen3_moe": "Qwen3MoeAWQForCausalLM"}
LLMC_FAMILIES = ("llama", "qwen2", "qwen3", "gemma2", "phi3", "qwen2_moe", "qwen3_moe", "gemma3")
SCALE_FAMILIES = ("qwen3", "gemma", "gemma2", "phi3", "mixtral", "qwen3_moe")


def _ours(model, layer) -> list[tuple[str, tuple[str, ...]]]:
    return [(g.prev, g.balance) for g in scaling_groups(model, layer)]


# llm-compressor's balance layers that ours holds as compensated float readers instead: the routers.
LLMC_COMPENSATED = {"qwen2_moe": ("mlp.gate",), "qwen3_moe": ("mlp.gate",)}
# The norm readers llm-compressor leaves out (uncompensated): Qwen2-MoE's shared expert and its gate.
LLMC_MISSES = {"qwen2_moe": ("mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj")}
# Groups llm-compressor leaves out on purpose: Gemma 3's input_layernorm -> q,k,v (its mappings.py: smoothing
# it measured worse than RTN, llm-compressor issue 2522). The fold is exact (q/k norms act after the
# projections, as Qwen3's, which llm-compressor does smooth); ours keeps the group, as AutoAWQ does for Gemma 2.
LLMC_OMITS = {"gemma3": ("input_layernorm",)}


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
        smooths = _resolve(m.smooth_layer, names)
        for smooth in smooths:  # several (one up_proj per expert): each balances the linears beside it
            scope = smooth.rpartition(".")[0] + "." if len(smooths) > 1 else ""
            balance = tuple(n for pattern in m.balance_layers for n in _resolve(pattern, names) if n.startswith(scope))
            prev = layer.get_submodule(smooth)
            if isinstance(prev, torch.nn.Linear) and prev.out_features < layer.get_submodule(balance[0]).in_features:
                continue  # llm-compressor skips a linear -> linear mapping whose widths do not meet
            if smooth.endswith(".v_proj") and prev.weight.shape != layer.get_submodule(balance[0]).weight.shape:
                continue  # AutoAWQ's (and our) v -> o rule: equal weight shapes
            kept = sorted(n for n in balance if n not in LLMC_COMPENSATED.get(family, ()))
            theirs.append((smooth, tuple(kept)))  # balance order: theirs pattern-major, ours expert-major
    ours = [(prev, tuple(sorted(n for n in balance if n not in LLMC_MISSES.get(family, ()))))
            for prev, balance in _ours(model, layer) if prev not in LLMC_OMITS.get(family, ())]
    assert theirs == [(p, b) for p, b in ours if b]


@pytest.mark.parametrize("family", sorted(LLMC_COMPENSATED))
def test_llm_compressor_compensates_the_router_but_not_the_shared_expert(family):
    """What the two rule sets do with the post-attention norm's float readers (module docstring)."""
    mappings = pytest.importorskip("llmcompressor.modifiers.transform.awq.mappings", reason="tox -e peers")
    model = tiny_model(family)
    layer = decoder_layers(model)[0]
    norm = next(g for g in scaling_groups(model, layer) if g.prev == "post_attention_layernorm")
    names = [n for n, _ in layer.named_modules() if n]
    (theirs,) = [m for m in mappings.AWQ_MAPPING_REGISTRY[type(model).__name__]
                 if _resolve(m.smooth_layer, names) == ["post_attention_layernorm"]]
    balance = {n for pattern in theirs.balance_layers for n in _resolve(pattern, names)}
    assert "mlp.gate" in balance and "mlp.gate" in norm.compensate
    missed = {*LLMC_MISSES.get(family, ()), *[c for c in norm.compensate if c != "mlp.gate"]}
    assert not balance & missed and missed <= {*norm.balance, *norm.compensate}


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


@pytest.mark.parametrize("family", ["mixtral", "qwen3_moe"])
def test_autoawqs_moe_checkpoints_leave_the_router_uncompensated(family, blocks, tmp_path):
    """AutoAWQ 0.2.9's own checkpoint (its GEMM folder, its names): the post-attention norm carries
    the AWQ scales, the float router does not, and ``verify --reference`` reports every layer's router
    under reference.fold-consistency. Qwen3-MoE also leaves the float router out of
    modules_to_not_convert (None), so transformers 4.51, where the router is an nn.Linear, would
    expect packed tensors for it (modules.not-convert)."""
    pytest.importorskip("awq", reason="AutoAWQ 0.2.9: tox -e peers")
    from awq_harness.awq_ref.data.tiny import save_tiny_model
    from awq_harness.conformance import verify

    folder = save_tiny_model(tmp_path / "fp", family, seed=31)
    theirs = awq_peers.run_autoawq(folder, blocks, 64, torch.float32, tmp_path / "autoawq").checkpoint
    report = verify(theirs, reference=folder)
    block = "block_sparse_moe" if family == "mixtral" else "mlp"
    routers = {f"model.layers.{i}.{block}.gate" for i in range(2)}
    assert {f.tensor for f in report.of_rule("reference.fold-consistency")} == routers
    undeclared = {f.tensor for f in report.of_rule("modules.not-convert")}
    assert undeclared == (set() if family == "mixtral" else {r + ".weight" for r in routers})
