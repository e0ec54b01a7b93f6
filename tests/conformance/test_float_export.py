"""``convert --to fp16|bf16``: on every golden, a float checkpoint whose linears are exactly the
dequantised weights in that dtype, with no quantization_config, that transformers loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.conformance import decode
from awq_harness.conformance.float_export import FLOAT_TARGETS
from awq_harness.conformance.runner import load_layers
from awq_harness.golden.specs import GOLDENS
from tests.conformance.helpers import run_cli

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "checkpoints"
NAMES = sorted(s.name for s in GOLDENS)


def _dequantised(src: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Independently of the exporter: every tensor of src, quantised linears as (q - z) * s (in float64)."""
    folder, decl, layers, reader, _ = load_layers(src)
    owned = {i.name for layer in layers for i in layer.infos.values()}
    out = {n: reader.get(i).to(dtype) for n, i in folder.tensors.items() if n not in owned}
    for layer in layers:
        t = {s: reader.get(i) for s, i in layer.infos.items()}
        qw, g_idx = decode.full(layer, t, decl.gptq_v1), decode.group_index(layer, t)
        if g_idx is None:
            w = qw.dequantize(torch.float64)
        else:  # act-order: column k reads the scale and zero of its group g_idx[k]
            w = (qw.q.double() - qw.zeros.double()[:, g_idx]) * qw.scales.double()[:, g_idx]
        out[f"{layer.prefix}.weight"] = w.to(dtype)
        if "bias" in t:
            out[f"{layer.prefix}.bias"] = t["bias"].to(dtype)
    return out


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a 16-bit float tensor (so -0.0 and 0.0 differ); other tensors as they are."""
    return t.view(torch.int16) if t.is_floating_point() and t.dtype.itemsize == 2 else t


def _export(name: str, to: str, tmp_path: Path) -> Path:
    dst = tmp_path / f"{name}-{to}"
    assert run_cli(["convert", str(GOLDEN / name), str(dst), "--to", to]) == 0
    return dst


@pytest.mark.parametrize("to", sorted(FLOAT_TARGETS))
@pytest.mark.parametrize("name", NAMES)
def test_export_equals_the_dequantised_weights_bit_for_bit(name, to, tmp_path):
    dst = _export(name, to, tmp_path)
    config = json.loads((dst / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == str(FLOAT_TARGETS[to]).removeprefix("torch.")
    written = {}
    for shard in sorted(dst.glob("*.safetensors")):
        written.update(load_file(shard))
    want = _dequantised(GOLDEN / name, FLOAT_TARGETS[to])
    tied = config.get("tie_word_embeddings", False)
    assert set(written) == set(want) - ({"lm_head.weight"} if tied else set())
    for key, tensor in written.items():
        assert tensor.dtype == want[key].dtype and torch.equal(_bits(tensor), _bits(want[key])), key


@pytest.mark.parametrize("name", ["llama-gemm-g64-awq", "qwen2-ct-g128-sym-rtn", "opt-gemm-g128-rtn"])
def test_transformers_loads_the_export_as_a_plain_model(name, tmp_path):
    from transformers import AutoModelForCausalLM

    dst = _export(name, "fp16", tmp_path)
    model, info = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float16, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert getattr(model.config, "quantization_config", None) is None
    want = _dequantised(GOLDEN / name, torch.float16)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in want.items() if k in state)
