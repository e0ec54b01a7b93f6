"""A method is one record in the registry: a toy method registered by this test alone goes through
``quantize`` -> ``verify`` -> ``eval`` like the built-in ones; bad names and formats are one line."""
import json

import pytest
import torch

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model, tiny_model
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.methods.method import Method
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method, method_names, register, unregister
from awq_harness.awq_ref.methods.rtn import RtnStep, rtn_layer
from awq_harness.awq_ref.model.arch import layer_prefix, linears_in
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.modules.swap import LinearError, relative_error, replace_linears
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

TOY = "rtn-half-scales"


class HalfScalesStep(RtnStep):
    """RTN whose stored scales are halved: every dequantised weight is half the RTN one."""

    def quantize(self, model, index, layer):
        prefix = f"{layer_prefix(model)}.{index}."
        quantized = {name: QuantizedWeight(qw.q, qw.scales / 2, qw.zeros, qw.spec)
                     for name, qw in rtn_layer(layer, self.request.spec).items()}
        errors = [LinearError(prefix + name, relative_error(linears_in(layer)[name].weight.detach(), qw.dequantize()))
                  for name, qw in quantized.items()]
        replace_linears(layer, quantized, self.request.version)
        return errors


@pytest.fixture
def toy_method():
    method = register(Method(TOY, lambda request, calib_ids: HalfScalesStep(request),
                             metadata=lambda request: {"toy_scale_factor": 0.5}))
    yield method
    unregister(TOY)
    assert TOY not in method_names()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=2)


def test_a_method_registered_in_a_test_quantizes_verifies_and_evaluates(toy_method, model_dir, tmp_path, capsys):
    out = tmp_path / "toy"
    assert main(["quantize", "--model", str(model_dir), "--method", TOY, "--format", "gemm", "--out", str(out)]) == 0
    meta = json.loads((out / "awq_harness.json").read_text())
    assert meta["method"] == TOY and meta["toy_scale_factor"] == 0.5
    capsys.readouterr()
    assert main(["verify", str(out), "--json", str(tmp_path / "verify.json")]) == 0, capsys.readouterr().out
    table = tmp_path / "eval.json"
    assert main(["eval", "--model", str(model_dir), "--methods", f"rtn,{TOY}", "--windows", "2", "--seqlen", "128",
                 "--json", str(table)]) == 0
    rows = {r["label"]: r["ppl"] for r in json.loads(table.read_text())["rows"]}
    assert set(rows) == {"fp", "rtn w4 g64", f"{TOY} w4 g64"}
    assert rows[f"{TOY} w4 g64"] > rows["rtn w4 g64"]  # half-size weights: a worse model than plain RTN


def test_registering_a_taken_name_is_refused(toy_method):
    with pytest.raises(ValueError, match="already registered"):
        register(toy_method)


def test_an_unknown_method_is_one_line_naming_the_choices():
    with pytest.raises(HarnessError) as err:
        get_method("nope")
    assert str(err.value) == f"unknown method 'nope'; available: {', '.join(method_names())}"
    assert {"awq", "gptq", "rtn"} <= set(method_names())


@pytest.mark.parametrize("args, message", [
    (["--method", TOY, "--format", "gptq"], f"--method {TOY} writes --format gemm|gemv, not --format gptq"),
    (["--method", TOY, "--keep-layers", "0"], f"--keep-layers: --method {TOY} keeps no layers or linears in float"),
])
def test_unknown_methods_and_mismatched_formats_are_one_line(toy_method, model_dir, tmp_path, capsys, args, message):
    code = main(["quantize", "--model", str(model_dir), *args, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


def test_quantize_offers_only_registered_methods(toy_method, model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["quantize", "--model", str(model_dir), "--method", "nope", "--out", str(tmp_path / "x")])
    last = capsys.readouterr().err.splitlines()[-1]
    assert exit_.value.code == 2 and "invalid choice: 'nope'" in last and f"'{TOY}'" in last


def test_eval_names_an_unknown_method_in_one_line(model_dir):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--model", str(model_dir), "--methods", "rtn,nope", "--windows", "1", "--seqlen", "64"])
    assert f"unknown method 'nope'; available: {', '.join(method_names())}" in str(exit_.value.code)


@pytest.mark.parametrize("name, honoured", [("rtn", True), ("awq", False), ("gptq", False)])
def test_modules_to_not_convert_are_refused_by_methods_that_do_not_honour_them(name, honoured):
    """RTN skips the listed linears; AWQ's and GPTQ's steps do not, so the request is refused
    before any work rather than silently quantising what was meant to stay float."""
    version = "gptq" if name == "gptq" else "gemm"
    request = QuantizeRequest(QuantSpec(4, 32, True), version, modules_to_not_convert=["down_proj"])
    model = tiny_model("llama")
    ids = torch.randint(0, 512, (2, 16), generator=torch.Generator().manual_seed(0))
    if honoured:
        quantize_model(model, name, request, ids)
        assert all(not isinstance(layer.mlp.down_proj, AwqLinear) for layer in model.model.layers)
    else:
        with pytest.raises(ValueError, match=f"{name}: modules_to_not_convert is not supported"):
            quantize_model(model, name, request, ids)
