"""``awq-harness verify`` and ``awq-harness convert``: exit codes, JSON/HTML output, the
reference ranking, pickle handling, and lossless atomic conversion."""
from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import load_file

from awq_harness.conformance import RULES, SCHEMA, SCHEMA_VERSION, decode, verify
from awq_harness.conformance.runner import load_layers
from tests.conformance.helpers import edit_tensors, map_packed, run_cli


def _tensors(folder):
    out = {}
    for p in sorted(folder.glob("*.safetensors")):
        out.update(load_file(p))
    return out


def test_verify_exit_codes_and_json(built, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert run_cli(["verify", str(built["gemm"]), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["schema_version"] == SCHEMA_VERSION and doc["conforms"] is True
    assert set(doc["rules_run"]) <= set(RULES) and doc["format"] == "gemm"
    assert all({"rule", "severity", "message", "file", "tensor"} == set(f) for f in doc["findings"])
    assert run_cli(["verify", str(tmp_path / "nowhere")]) == 2
    broken = tmp_path / "broken"
    shutil.copytree(built["gemm"], broken)
    (broken / "config.json").unlink()
    assert run_cli(["verify", str(broken), "--quiet"]) == 1
    assert "config.present" in capsys.readouterr().out


def test_verify_html_is_self_contained(built, tmp_path):
    page = tmp_path / "r.html"
    assert run_cli(["verify", str(built["ct"]), "--html", str(page)]) == 0
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "compressed-tensors" in html
    assert "<script" not in html and "http" not in html


def test_reference_ranks_layers_and_passes_clean(built, tmp_path):
    out = tmp_path / "r.json"
    assert run_cli(["verify", str(built["gemm"]), "--reference", str(built["reference"]), "--json", str(out)]) == 0
    layers = json.loads(out.read_text())["layers"]
    assert len(layers) == 14 and [row["rank"] for row in layers] == list(range(1, 15))
    assert layers[0]["sqnr_db"] <= layers[-1]["sqnr_db"]
    assert all(0.01 < row["rel_error"] < 0.2 and row["sqnr_db"] > 14 for row in layers)


def test_reference_flags_the_damaged_layer_first(built, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(built["gemm"], folder)
    edit_tensors(folder, lambda t: map_packed(t, "qweight", lambda c: 15 - c, only="model.layers.1.mlp.up_proj"))
    report = verify(folder, reference=built["reference"])
    assert report.layers[0]["layer"] == "model.layers.1.mlp.up_proj"
    errors = [f.tensor for f in report.of_rule("reference.error") if f.severity == "error"]
    assert errors == ["model.layers.1.mlp.up_proj"]


def test_pickle_is_refused_unless_allowed(built, tmp_path):
    folder = tmp_path / "pkl"
    shutil.copytree(built["gemm"], folder)
    state = _tensors(folder)
    for p in folder.glob("*.safetensors"):
        p.unlink()
    (folder / "model.safetensors.index.json").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    assert run_cli(["verify", str(folder)]) == 2
    assert run_cli(["verify", str(folder), "--allow-pickle"]) == 0


def test_pickle_with_code_is_not_executed(built, tmp_path):
    import pickle

    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(built["gemm"] / "config.json", folder)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Evil()}))
    report = verify(folder, allow_pickle=True)
    assert not marker.exists() and report.of_rule("file.pickle") and report.exit_code() == 2


def test_convert_round_trip_is_bit_identical(built, tmp_path):
    ct, back = tmp_path / "ct", tmp_path / "back"
    assert run_cli(["convert", str(built["gemm"]), str(ct), "--to", "compressed-tensors"]) == 0
    assert run_cli(["convert", str(ct), str(back), "--to", "gemm"]) == 0
    a, b = _tensors(built["gemm"]), _tensors(back)
    assert sorted(a) == sorted(b)
    assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    assert verify(ct).conforms and verify(back).conforms


def test_convert_dequantised_weights_identical_both_ways(built):
    def weights(folder):
        _, decl, layers, reader, _ = load_layers(folder)
        return {lay.prefix: decode.full(lay, {s: reader.get(i) for s, i in lay.infos.items()}, False).dequantize()
                for lay in layers}
    g, c = weights(built["gemm"]), weights(built["ct"])
    assert sorted(g) == sorted(c) and all(torch.equal(g[k], c[k]) for k in g)


def test_convert_refuses_bad_source_and_leaves_no_output(built, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(built["gemm"], bad)
    (bad / "config.json").unlink()
    assert run_cli(["convert", str(bad), str(tmp_path / "out"), "--to", "compressed-tensors"]) == 2
    assert run_cli(["convert", str(built["gemm"]), str(tmp_path / "same"), "--to", "gemm"]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "same").exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_convert_failure_midway_is_atomic(built, tmp_path, monkeypatch):
    import awq_harness.conformance.convert as conv

    def boom(*_a, **_k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(conv, "_converted_tensors", boom)
    try:
        conv.convert(built["gemm"], tmp_path / "out", "compressed-tensors")
    except RuntimeError:
        pass
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial*"))
