"""compressed-tensors' scale_dtype / zp_dtype and act-order fields: well-formed checkpoints pass,
llm-compressor's own golden gets only the compatibility warning."""

import pytest

from awq_harness.conformance.runner import load_layers, verify
from awq_harness.golden.third_party import checkpoint
from tests.conformance.defects import _ct_g_idx, _ct_weights, _shuffled


def test_group_act_order_with_a_valid_g_idx_passes(fresh):
    folder = fresh("ct")
    _ct_weights(actorder="group")(folder)
    _ct_g_idx(_shuffled)(folder)
    report = verify(folder)
    assert not report.of_rule("ct.g-idx") and report.conforms


def test_group_act_order_is_claimed_refused_by_vllm_and_static_act_order_is_not(fresh):
    """vLLM 0.32 parses actorder "group" / "dynamic" and raises (tests/peers/test_vllm_serving.py runs it)."""
    from awq_harness import golden
    from awq_harness.conformance.loaders import claim

    report = verify(golden.path("llama-ct-g64-actorder-gptq"))
    assert report.conforms and claim(report.findings, "vllm") == "refuses"
    assert [f.severity for f in report.of_rule("loader.vllm") if "actorder" in f.message] == ["warning"]
    folder = fresh("ct")
    _ct_weights(actorder="weight")(folder)
    assert claim(verify(folder).findings, "vllm") == "loads"


@pytest.mark.parametrize(("actorder", "g_idx", "refused"), [("dynamic", False, True), ("group", True, True),
                                                           ("weight", True, False), (None, False, False)])
def test_vllm_actorder_refusal_follows_the_config_in_the_claim_and_the_matrix(fresh, actorder, g_idx, refused):
    """vLLM refuses while parsing the config, whatever tensors the layers hold: the loader claim
    and every runtime-matrix cell read the declared ordering, so they cannot disagree."""
    from awq_harness.conformance.loaders import claim
    from awq_harness.conformance.runtimes import vllm
    from awq_harness.conformance.runtimes.matrix import HEADS, build

    folder = fresh("ct")
    if actorder:
        _ct_weights(actorder=actorder)(folder)
    if g_idx:
        _ct_g_idx(_shuffled)(folder)
    assert claim(verify(folder).findings, "vllm") == ("refuses" if refused else "loads")
    _, decl, layers, _, _ = load_layers(folder)
    section = build([(vllm, "0.32")], layers, decl, "compressed-tensors", None, (1,), ("cpu", "sm90"))
    cells = [c for r in section["targets"][0]["rows"] if r["kind"] != HEADS for c in r["cells"]]
    assert cells and all((c["rule"] == "vllm.ct.actorder") == refused for c in cells)


def test_dtype_fields_that_match_the_tensors_only_warn(fresh):
    folder = fresh("ct")
    _ct_weights(scale_dtype="torch.float16", zp_dtype="torch.int8")(folder)
    report = verify(folder)
    assert not report.of_rule("ct.dtype-fields") and report.of_rule("ct.dtype-fields-compat") and report.conforms


def test_llmcompressor_golden_declares_the_fields_and_conforms():
    report = verify(checkpoint("llmcompressor-awq-ct"))
    assert report.conforms and not report.of_rule("ct.dtype-fields")
    assert [f.severity for f in report.of_rule("ct.dtype-fields-compat")] == ["warning"]


def test_an_autoround_awq_export_is_read_as_gemm(fresh):
    from tests.conformance.defects import _auto_round

    folder = fresh("gemm")
    _auto_round("auto_round:auto_awq")(folder)
    report = verify(folder)
    assert report.format == "gemm" and report.conforms
