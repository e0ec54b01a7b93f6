"""quantize --format compressed-tensors: any method's numbers re-packed, an 8-bit plan's modules in a
second (8-bit) config group whose targets name exactly them; the verifier reads it, its dequantised
weights are the method's, and convert refuses what AutoAWQ GEMM cannot store."""
import filecmp
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.models import load_model
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from awq_harness.conformance import verify
from awq_harness.conformance.dequantized import load_dequantized
from tests.conformance.ct_mixed import EIGHT_BIT_LAYERS, EIGHT_BIT_LINEARS, write_plan

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/awq_ref/conftest.py

CALIB = ["--calib-samples", "2", "--seqlen", "64"]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
ALL = sorted(f"model.layers.{i}.{n}" for i in range(2) for n in LINEARS)
EIGHT = sorted([f"model.layers.{i}.{n}" for i in EIGHT_BIT_LAYERS for n in LINEARS] + EIGHT_BIT_LINEARS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=0)


@pytest.fixture(scope="module")
def mixed(model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    return _quantize(model_dir, root / "ct48", "--keep-layers", str(write_plan(root / "plan.json")))


def _quantize(model_dir, out, *extra, method="rtn", fmt="compressed-tensors"):
    code = main(["quantize", "--model", str(model_dir), "--method", method, "--format", fmt, *CALIB, *extra,
                 "--out", str(out)])
    assert code == 0
    return out


def _groups(folder):
    return json.loads((folder / "config.json").read_text())["quantization_config"]["config_groups"]


def _float_weight(model_dir, name):
    return load_model(model_dir).get_submodule(name).weight.detach().float()


def test_eight_bit_group_targets_exactly_the_plans_modules(mixed):
    groups = _groups(mixed)
    assert [g["weights"]["num_bits"] for g in groups.values()] == [4, 8]
    assert groups["group_1"]["targets"] == EIGHT
    assert sorted(groups["group_0"]["targets"] + groups["group_1"]["targets"]) == ALL
    report = verify(mixed)
    assert report.format == "compressed-tensors" and report.exit_code() == 0, [f.line() for f in report.findings]
    packed = load_file(mixed / "model.safetensors")
    for name in ALL:
        words, in_features = packed[f"{name}.weight_packed"].shape[1], int(packed[f"{name}.weight_shape"][1])
        assert words == in_features // (4 if name in EIGHT else 8)


def test_dequantised_weights_are_rtn_at_each_modules_width(mixed, model_dir):
    """4-bit modules: the method's asymmetric scheme; 8-bit ones: symmetric (uint8b128, vLLM's GPU type)."""
    loaded = load_dequantized(mixed)
    for name in ALL:
        spec = QuantSpec(8, 64, zero_point=False) if name in EIGHT else QuantSpec(4, 64, zero_point=True)
        want = quantize(_float_weight(model_dir, name), spec, torch.float16).dequantize()
        assert torch.equal(loaded.get_submodule(name).weight.detach(), want), name


def test_the_same_run_writes_the_same_bytes(mixed, model_dir, tmp_path):
    again = _quantize(model_dir, tmp_path / "again", "--keep-layers", str(write_plan(tmp_path / "plan.json")))
    names = sorted(p.name for p in mixed.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert filecmp.cmpfiles(mixed, again, names, shallow=False)[0] == names


def test_all_four_bit_output_has_the_tensors_convert_writes_from_gemm(model_dir, tmp_path):
    gemm = _quantize(model_dir, tmp_path / "gemm", fmt="gemm")
    assert main(["convert", str(gemm), str(tmp_path / "converted"), "--to", "compressed-tensors"]) == 0
    direct = _quantize(model_dir, tmp_path / "ct")
    a, b = load_file(tmp_path / "converted" / "model.safetensors"), load_file(direct / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[n], b[n]) for n in a)
    assert main(["convert", str(direct), str(tmp_path / "back"), "--to", "gemm"]) == 0  # lossless: one width
    assert verify(tmp_path / "back").exit_code() == 0


def test_convert_to_gemm_refuses_a_mixed_checkpoint_and_writes_nothing(mixed, tmp_path, capsys):
    assert main(["convert", str(mixed), str(tmp_path / "gemm"), "--to", "gemm"]) == 2
    err = capsys.readouterr().err
    assert "stores one bit width" in err and err.count("\n") == 1
    assert not (tmp_path / "gemm").exists() and not list(tmp_path.iterdir())


def test_float_kept_layers_are_ignored_float_linears(model_dir, tmp_path):
    out = _quantize(model_dir, tmp_path / "ct-float", "--keep-layers", "1", "--keep-as", "float")
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    assert q["ignore"] == ["lm_head"] + [n for n in ALL if n.startswith("model.layers.1.")]
    assert verify(out).exit_code() == 0
    loaded = load_dequantized(out)
    name = "model.layers.1.mlp.down_proj"
    assert torch.equal(loaded.get_submodule(name).weight.detach(), _float_weight(model_dir, name).half().float())


def test_awq_numbers_go_to_a_mixed_checkpoint(model_dir, tmp_path):
    out = _quantize(model_dir, tmp_path / "awq48", "--keep-layers", str(write_plan(tmp_path / "plan.json")),
                    method="awq")
    assert _groups(out)["group_1"]["targets"] == EIGHT
    assert verify(out).exit_code() == 0


@pytest.mark.parametrize("args, message", [
    (["--format", "gemm"], "8-bit modules need --format compressed-tensors"),
    (["--method", "gptq", "--format", "compressed-tensors"], "--method gptq keeps no layers or linears in float"),
])
def test_eight_bit_plans_are_refused_where_they_cannot_be_written(model_dir, tmp_path, capsys, args, message):
    plan = write_plan(tmp_path / "plan.json")
    code = main(["quantize", "--model", str(model_dir), *args, *CALIB, "--keep-layers", str(plan),
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "x").exists()



def test_the_written_checkpoint_has_the_perplexity_the_8bit_plan_measured(tmp_path):
    """plan --keep-as 8bit measures its kept layers as RTN 8-bit copies in memory; quantize writes
    exactly those (the stored fp16 norms and embeddings are the only difference). A confident tiny
    model (output head x20, its own sampled text) so that quantisation moves the perplexity."""
    import copy

    from awq_harness.awq_ref.data.tiny import tiny_model
    from awq_harness.awq_ref.methods.registry import QuantizeRequest
    from awq_harness.awq_ref.mixed_precision.plan import _ppl, plan_keep_layers
    from awq_harness.awq_ref.mixed_precision.sensitivity import layer_sensitivity
    from awq_harness.awq_ref.pipeline.quantize import quantize_model

    model = tiny_model("llama", seed=3, layers=3)
    model.get_output_embeddings().weight.data *= 20
    torch.manual_seed(0)
    start = torch.randint(0, 512, (4, 1), generator=torch.Generator().manual_seed(1))
    ids = model.generate(start, do_sample=True, max_new_tokens=63, min_new_tokens=63, top_k=0, pad_token_id=0)
    model.save_pretrained(tmp_path / "confident")
    reference = load_model(tmp_path / "confident").float().eval()
    quantized = copy.deepcopy(reference)
    quantize_model(quantized, "rtn", QuantizeRequest(QuantSpec(4, 64), "gemm"))
    ranking = layer_sensitivity(reference, quantized, ids[:2])
    plan = plan_keep_layers(reference, quantized, ranking, ids[:2], 0.5, validation_ids=ids[2:], keep_as="8bit")
    (tmp_path / "plan.json").write_text(json.dumps({"plan": plan.to_json()}))
    out = _quantize(tmp_path / "confident", tmp_path / "ct", "--keep-layers", str(tmp_path / "plan.json"))
    written = _ppl(load_dequantized(out).float().eval(), ids[2:], torch.float32)
    v = plan.validation
    assert plan.keep_layers and abs(v.ppl_quantized - v.ppl_plan) > 0.01 * v.ppl_plan
    assert abs(written - v.ppl_plan) < 0.05 * abs(v.ppl_quantized - v.ppl_plan)
