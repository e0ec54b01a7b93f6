"""Each layout's ``quantization_config`` holds the keys that describe it, and every writer takes
those keys from the format module: the AWQ saver, GPTQ's config, the layout table the pipeline
writes through, and convert add only the keys that are not about the layout. A change in a format
function changes what is written."""
import pytest

from awq_harness.awq_ref.checkpoint import layouts
from awq_harness.awq_ref.checkpoint.awq import AwqConfig
from awq_harness.awq_ref.checkpoint.layouts import LayoutRequest
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import FORMATS, awq_gemm, awq_gemv, compressed_tensors, gptq
from awq_harness.awq_ref.methods import gptq as gptq_method
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import output_layout
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.conformance.convert import awq_config, ct_config
from awq_harness.conformance.declared import read_declared

SPECS = [QuantSpec(4, 64, True), QuantSpec(4, 128, False), QuantSpec(4, -1, True)]
CT_EXTRAS = {"ignore", "version", "kv_cache_scheme", "sparsity_config", "transform_config"}


def marked(name):
    """A stand-in format function whose output no writer could build by itself."""
    return lambda spec, *args, **kwargs: {"layout": name, "group": spec.group_size, "options": list(args)}


def declared(spec: QuantSpec, skip=None):
    q = {"quant_method": "awq", **awq_gemm.quantization_config(spec), "modules_to_not_convert": skip}
    return read_declared({"quantization_config": q})


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("fmt", [awq_gemm, awq_gemv])
def test_awq_config_is_the_layouts_plus_what_stays_float(fmt, spec):
    written = AwqConfig(spec, fmt.NAME, ["mlp.down_proj"]).to_json()
    assert written == {**fmt.quantization_config(spec), "modules_to_not_convert": ["mlp.down_proj"]}
    assert written["quant_method"] == "awq" and written["version"] == fmt.NAME
    assert written["group_size"] == spec.group_size and written["zero_point"] == spec.zero_point


@pytest.mark.parametrize("fmt", [awq_gemm, awq_gemv])
def test_the_awq_saver_writes_what_the_format_function_returns(monkeypatch, fmt):
    monkeypatch.setattr(fmt, "quantization_config", marked(fmt.NAME))
    assert AwqConfig(SPECS[0], fmt.NAME.upper()).to_json() == {**marked(fmt.NAME)(SPECS[0]),
                                                                "modules_to_not_convert": None}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("checkpoint_format", ["gptq", "gptq_v2"])
@pytest.mark.parametrize("cfg", [GptqConfig(), GptqConfig(damp=0.1, act_order=True, true_sequential=False)])
def test_gptq_config_is_the_layouts_plus_the_search_settings(spec, checkpoint_format, cfg):
    written = gptq_method.quantization_config(spec, cfg, checkpoint_format)
    ours = gptq.quantization_config(spec, checkpoint_format, desc_act=cfg.act_order, static_groups=cfg.static_groups)
    assert written == {**ours, "damp_percent": cfg.damp, "true_sequential": cfg.true_sequential}
    assert written["checkpoint_format"] == checkpoint_format and written["desc_act"] == cfg.act_order


def test_gptq_config_passes_its_act_order_options_to_the_format_function(monkeypatch):
    monkeypatch.setattr(gptq, "quantization_config", marked("gptq"))
    cfg = GptqConfig(act_order=True, static_groups=True)
    assert gptq_method.quantization_config(SPECS[0], cfg, "gptq_v2") == {
        "layout": "gptq", "group": 64, "options": ["gptq_v2", True, True], "damp_percent": cfg.damp,
        "true_sequential": cfg.true_sequential}


def test_gptq_config_refuses_an_unknown_variant():
    with pytest.raises(ValueError, match="checkpoint_format"):
        gptq.quantization_config(SPECS[0], "gptq_v3")


@pytest.mark.parametrize("method, version, fmt", [("rtn", "gemm", awq_gemm), ("awq", "gemv", awq_gemv),
                                                  ("gptq", "gptq", gptq)])
def test_the_pipelines_layout_table_writes_the_format_functions_config(monkeypatch, method, version, fmt):
    monkeypatch.setattr(fmt, "quantization_config", marked(version))
    model = tiny_model("llama", seed=0)
    config = output_layout(model, method, QuantizeRequest(QuantSpec(4, 64), version), None).config
    written = config["quantization_config"]
    assert {k: written[k] for k in ("layout", "group")} == {"layout": version, "group": 64}
    extras = {"damp_percent", "true_sequential"} if version == "gptq" else {"modules_to_not_convert"}
    assert set(written) == {"layout", "group", "options"} | extras


def test_the_layout_table_refuses_a_format_it_cannot_write():
    with pytest.raises(ValueError, match="compressed-tensors"):
        output_layout(tiny_model("llama"), "rtn", QuantizeRequest(QuantSpec(4, 64), "compressed-tensors"), None)


@pytest.mark.parametrize("spec", SPECS)
def test_convert_configs_are_the_layouts_plus_what_is_not_about_it(spec):
    decl = declared(spec, ["mlp.down_proj"])
    ct = ct_config(decl)
    assert {k: v for k, v in ct.items() if k not in CT_EXTRAS} == compressed_tensors.quantization_config(spec)
    assert ct["ignore"] == ["lm_head", "re:.*mlp.down_proj.*"]
    assert awq_config(decl) == {**awq_gemm.quantization_config(spec), "modules_to_not_convert": ["mlp.down_proj"]}


def test_convert_writes_what_the_format_functions_return(monkeypatch):
    monkeypatch.setattr(compressed_tensors, "quantization_config", marked("ct"))
    decl = declared(SPECS[1])
    monkeypatch.setattr(awq_gemm, "quantization_config", marked("gemm"))
    ct, awq = ct_config(decl), awq_config(decl)
    assert {k: v for k, v in ct.items() if k not in CT_EXTRAS} == marked("ct")(SPECS[1])
    assert awq == {**marked("gemm")(SPECS[1]), "modules_to_not_convert": None}


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", list(FORMATS))
def test_the_verifier_reads_each_config_back_as_its_format(name, spec):
    decl = read_declared({"quantization_config": FORMATS[name].quantization_config(spec)})
    assert decl.format == name and decl.group_size == spec.group_size and decl.zero_point == spec.zero_point
    assert not [f for f in decl.findings if f.severity == "error"]


def test_the_checkpoint_layout_table_names_what_it_writes():
    model = tiny_model("llama")
    with pytest.raises(HarnessError, match="no checkpoint layout for format 'marlin'; written: gemm"):
        layouts.output_layout(model, LayoutRequest("marlin", SPECS[0]))
    with pytest.raises(HarnessError, match="not decoder linears of the model"):
        layouts.output_layout(model, LayoutRequest("compressed-tensors", SPECS[0], wide=("lm_head",),
                                                   wide_spec=SPECS[0]))
    with pytest.raises(HarnessError, match="GPTQ layout keeps no linear in float"):
        layouts.output_layout(model, LayoutRequest("gptq", SPECS[0], ["model.layers.0.mlp.down_proj"]))
