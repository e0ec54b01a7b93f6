"""Our compressed-tensors packing is compressed-tensors' own (``pack_to_int32``) at 4 and 8 bits,
for codes along K and zero points along N (``packed_dim=0``)."""
import pytest
import torch

from awq_harness.awq_ref.formats import compressed_tensors as ct
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize

pytestmark = pytest.mark.peers
helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")


@pytest.mark.parametrize("bits", [4, 8])
def test_packing_equals_compressed_tensors(bits):
    spec = QuantSpec(bits, 32, True)
    qw = quantize(torch.randn(40, 96, generator=torch.Generator().manual_seed(bits)), spec)
    ours = ct.pack(qw)
    offset = 1 << (bits - 1)
    signed_q, signed_z = (qw.q - offset).to(torch.int8), (qw.zeros - offset).to(torch.int8)
    assert torch.equal(ours["weight_packed"], helpers.pack_to_int32(signed_q, bits))
    assert torch.equal(ours["weight_zero_point"], helpers.pack_to_int32(signed_z, bits, packed_dim=0))


# A mixed 4/8-bit checkpoint from ``quantize --format compressed-tensors --keep-layers PLAN``, read by
# compressed-tensors' own config models and decompressed by transformers' compressed-tensors loader.

@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from awq_harness.awq_ref.cli import main
    from awq_harness.awq_ref.data.tiny import save_tiny_model
    from tests.conformance.ct_mixed import make_ct_mixed

    root = tmp_path_factory.mktemp("ct-peer")
    out = {"mixed": make_ct_mixed(root / "mixed", root / "float")}
    for name, extra in (("act-weight", ["--gptq-static-groups"]), ("act-group", [])):
        model = save_tiny_model(root / "float-gptq", "llama", seed=3) if name == "act-weight" else root / "float-gptq"
        assert main(["quantize", "--model", str(model), "--method", "gptq", "--gptq-act-order", *extra,
                     "--format", "compressed-tensors", "--calib-samples", "2", "--seqlen", "64",
                     "--out", str(root / name)]) == 0
        out[name] = root / name
    return out


def _quantization_config(folder):
    import json

    return json.loads((folder / "config.json").read_text())["quantization_config"]


def _packed_bits(folder) -> dict[str, int]:
    """Each quantised module's code width: K codes in weight_packed's words per row."""
    from safetensors.torch import load_file

    t = load_file(folder / "model.safetensors")
    return {n[: -len(".weight_packed")]: 32 // (int(t[n.replace("_packed", "_shape")][1]) // t[n].shape[1])
            for n in t if n.endswith(".weight_packed")}


@pytest.mark.parametrize("kind", ["mixed", "act-weight"])
def test_config_validates_and_each_module_gets_its_groups_width(written, kind):
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils.match import match_name

    config = QuantizationConfig.model_validate(_quantization_config(written[kind]))
    for module, bits in _packed_bits(written[kind]).items():
        groups = [g for g in config.config_groups.values()
                  if any(match_name(module, t) or t == "Linear" for t in g.targets)]
        assert len(groups) == 1 and groups[0].weights.num_bits == bits, module


def test_compressed_tensors_refuses_actorder_group(written):
    """What ct.actorder-compat warns about: this release no longer reads actorder 'group'."""
    from compressed_tensors.quantization import QuantizationConfig
    from pydantic import ValidationError

    assert _quantization_config(written["act-group"])["config_groups"]["group_0"]["weights"]["actorder"] == "group"
    with pytest.raises(ValidationError, match="has been removed"):
        QuantizationConfig.model_validate(_quantization_config(written["act-group"]))


@pytest.mark.parametrize("kind", ["mixed", "act-weight"])
def test_transformers_decompresses_our_dequantised_weights(written, kind):
    from transformers import AutoModelForCausalLM
    from transformers.utils.quantization_config import CompressedTensorsConfig

    from awq_harness.conformance.dequantized import load_dequantized

    theirs = AutoModelForCausalLM.from_pretrained(written[kind], dtype=torch.float32,
                                                  quantization_config=CompressedTensorsConfig(run_compressed=False))
    ours = load_dequantized(written[kind])
    for module in _packed_bits(written[kind]):
        assert torch.equal(theirs.get_submodule(module).weight.detach().float(),
                           ours.get_submodule(module).weight.detach()), module
