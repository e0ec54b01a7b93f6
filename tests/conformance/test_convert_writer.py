"""convert writes through the one checkpoint writer: its plan (from the layers' sizes) matches the
converted tensors for every kind of source, across shards, and its config declares a dtype."""
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.conformance.convert import convert
from awq_harness.conformance.runner import verify
from tests.conformance.conftest import SHARD_BYTES
from tests.conformance.helpers import edit_config, make_checkpoint


def tensors(folder):
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        out.update(load_file(path))
    return out


@pytest.mark.parametrize("spec", [QuantSpec(4, 64), QuantSpec(4, 32, False), QuantSpec(4, -1)],
                         ids=["g64", "g32-sym", "per-channel"])
def test_sharded_round_trip_is_bit_identical_and_verifies(tmp_path, spec):
    gemm = make_checkpoint(tmp_path / "gemm", spec=spec, max_shard_bytes=SHARD_BYTES)
    ct = convert(gemm, tmp_path / "ct", "compressed-tensors", max_shard_bytes=SHARD_BYTES)
    back = convert(ct, tmp_path / "back", "gemm", max_shard_bytes=SHARD_BYTES)
    for folder in (ct, back):
        assert len(list(folder.glob("*.safetensors"))) > 1
        assert verify(folder).conforms
    a, b = tensors(gemm), tensors(back)
    assert sorted(a) == sorted(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
    assert ("model.layers.0.mlp.down_proj.weight_zero_point" in tensors(ct)) == spec.zero_point


def test_a_source_declaring_no_dtype_gets_that_of_its_tensors(tmp_path):
    gemm = make_checkpoint(tmp_path / "gemm")
    edit_config(gemm, lambda cfg: [cfg.pop(key) for key in ("dtype", "torch_dtype")])
    cfg = json.loads((convert(gemm, tmp_path / "ct", "compressed-tensors") / "config.json").read_text())
    assert cfg["dtype"] == cfg["torch_dtype"] == "float16"
