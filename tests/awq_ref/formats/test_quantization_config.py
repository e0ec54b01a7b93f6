"""Each layout's ``quantization_config`` holds the keys that describe it, and agrees with what the
checkpoint writers and convert write today (they add the keys that are not about the layout)."""
import pytest

from awq_ref.checkpoint.awq import AwqConfig
from awq_ref.checkpoint.gptq import gptq_quantization_config
from awq_ref.formats import FORMATS, awq_gemm, awq_gemv, compressed_tensors, gptq
from awq_ref.methods.gptq import GptqConfig
from awq_ref.primitives.quant import QuantSpec
from conformance.convert import ct_config
from conformance.declared import read_declared

SPECS = [QuantSpec(4, 64, True), QuantSpec(4, 128, False), QuantSpec(4, -1, True)]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("fmt", [awq_gemm, awq_gemv])
def test_awq_config_is_autoawqs_with_the_layout_as_version(fmt, spec):
    written = AwqConfig(spec, fmt.NAME).to_json()
    assert fmt.quantization_config(spec) == {k: v for k, v in written.items() if k != "modules_to_not_convert"}
    assert fmt.quantization_config(spec)["version"] == fmt.NAME


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("checkpoint_format", ["gptq", "gptq_v2"])
def test_gptq_config_matches_the_gptq_writer(spec, checkpoint_format):
    cfg = GptqConfig()
    written = gptq_quantization_config(spec, cfg, checkpoint_format)
    ours = gptq.quantization_config(spec, checkpoint_format, desc_act=cfg.act_order, static_groups=cfg.static_groups)
    assert ours == {k: v for k, v in written.items() if k not in ("damp_percent", "true_sequential")}


def test_gptq_config_refuses_an_unknown_variant():
    with pytest.raises(ValueError, match="checkpoint_format"):
        gptq.quantization_config(SPECS[0], "gptq_v3")


@pytest.mark.parametrize("spec", SPECS)
def test_compressed_tensors_config_matches_convert(spec):
    decl = read_declared({"quantization_config": {"quant_method": "awq", **awq_gemm.quantization_config(spec)}})
    written = ct_config(decl)
    assert compressed_tensors.quantization_config(spec) == {
        k: v for k, v in written.items() if k not in ("ignore", "version", "kv_cache_scheme", "sparsity_config",
                                                     "transform_config")}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", list(FORMATS))
def test_the_verifier_reads_each_config_back_as_its_format(name, spec):
    decl = read_declared({"quantization_config": FORMATS[name].quantization_config(spec)})
    assert decl.format == name and decl.group_size == spec.group_size and decl.zero_point == spec.zero_point
    assert not [f for f in decl.findings if f.severity == "error"]
