"""convert between GPTQ v1 and v2: lossless both ways where v1 can store the zeros, refused with
nothing written where a zero is 0, never across to the AWQ layouts."""
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness import golden
from awq_harness.conformance import decode
from awq_harness.conformance.convert import convert_checked
from awq_harness.conformance.runner import load_layers, verify
from tests.conformance.helpers import Q_PROJ, edit_tensors, run_cli


def _tensors(folder):
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def _weights(folder):
    _, decl, layers, reader, _ = load_layers(folder)
    return {lay.prefix: decode.full(lay, {s: reader.get(i) for s, i in lay.infos.items()}, decl.gptq_v1).dequantize()
            for lay in layers}


def _qcfg(folder):
    return json.loads((folder / "config.json").read_text())["quantization_config"]


def test_v2_to_v1_and_back_is_bit_identical_and_verifies(fresh, tmp_path):
    v2 = fresh("gptq")
    v1 = convert_checked(v2, tmp_path / "v1", "gptq")
    back = convert_checked(v1.path, tmp_path / "back", "gptq_v2")
    assert v1.report.conforms and back.report.conforms and verify(v1.path).conforms
    assert _qcfg(v1.path)["checkpoint_format"] == "gptq" and _qcfg(back.path) == _qcfg(v2)
    a, b = _tensors(v2), _tensors(back.path)
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    w2, w1 = _weights(v2), _weights(v1.path)
    assert all(torch.equal(w2[k], w1[k]) for k in w2)
    stored_v1, stored_v2 = _tensors(v1.path), a
    name = f"{Q_PROJ}.qzeros"
    assert not torch.equal(stored_v1[name], stored_v2[name])  # the stored zeros differ by one


def test_v1_golden_converts_to_v2_losslessly(tmp_path):
    src = golden.path("llama-gptq-g64-sym")
    out = convert_checked(src, tmp_path / "v2", "gptq_v2")
    assert out.report.conforms and _qcfg(out.path)["checkpoint_format"] == "gptq_v2"
    a, b = _weights(src), _weights(out.path)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_zero_of_zero_is_refused_for_v1_with_nothing_written(fresh, tmp_path, capsys):
    v2 = fresh("gptq")

    def zero_first(t):
        name = f"{Q_PROJ}.qzeros"
        if name not in t:  # another shard
            return
        t[name] = t[name].clone()
        t[name][0, 0] = t[name][0, 0] & ~0xF  # first stored zero -> 0, in v2 the zero itself
    edit_tensors(v2, zero_first)
    dst = tmp_path / "v1"
    assert run_cli(["convert", str(v2), str(dst), "--to", "gptq"]) == 2
    out = capsys.readouterr().out
    assert f"{Q_PROJ}.qzeros" in out and "GPTQ v1" in out
    assert not dst.exists() and not list(tmp_path.glob(".v1.*"))


@pytest.mark.parametrize("kind, target", [("gptq", "gemm"), ("gemm", "gptq"), ("gptq", "gptq_v2")])
def test_conversions_across_families_or_to_itself_are_refused(fresh, tmp_path, kind, target):
    dst = tmp_path / "out"
    assert run_cli(["convert", str(fresh(kind)), str(dst), "--to", target]) == 2
    assert not dst.exists()
