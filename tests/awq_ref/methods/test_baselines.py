"""NF4 (bitsandbytes) and HQQ (hqq) as fake-quantising methods beside AWQ, GPTQ and RTN."""
import pytest
import torch

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.methods.nf4 import NF4_CODEBOOK, nf4_fake_quant
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec


def normal_float_codebook(offset: float = 0.9677083) -> torch.Tensor:
    """QLoRA's NF4 construction: 8 positive and 7 negative standard-normal quantiles, an exact zero,
    scaled to [-1, 1] (the offset puts the outermost quantile at the mean of 1 - 1/(2*15) and 1 - 1/(2*16))."""
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).sort().values
    return values / values.abs().max()


def test_the_published_nf4_codebook_is_the_normal_float_construction():
    assert torch.allclose(torch.tensor(NF4_CODEBOOK, dtype=torch.float64), normal_float_codebook(), atol=1e-6)


def test_bitsandbytes_nf4_puts_each_weight_on_the_nearest_code_times_its_block_absmax():
    pytest.importorskip("bitsandbytes")
    w = torch.randn(16, 256, generator=torch.Generator().manual_seed(0))
    w_hat = nf4_fake_quant(w, QuantSpec(4, 64))
    codes = torch.tensor(NF4_CODEBOOK)
    blocks, hat_blocks = w.reshape(-1, 64), w_hat.reshape(-1, 64)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    nearest = codes[(blocks / absmax).unsqueeze(-1).sub(codes).abs().argmin(-1)]
    assert torch.allclose(hat_blocks, nearest * absmax, atol=1e-6)


def test_nf4_is_four_bit_only_and_writes_no_checkpoint(tmp_path, capsys):
    with pytest.raises(ValueError, match="4-bit code"):
        nf4_fake_quant(torch.randn(4, 64), QuantSpec(3, 64))
    assert get_method("nf4").formats == () and get_method("hqq").formats == ()
    assert main(["quantize", "--method", "nf4", "--out", str(tmp_path / "q")]) == 2
    assert "only fake-quantises" in capsys.readouterr().err and not (tmp_path / "q").exists()


@pytest.mark.parametrize("method", ["nf4", "hqq"])
def test_a_baseline_quantises_a_tiny_model_in_place_with_at_most_2_to_the_bits_values_per_group(method):
    pytest.importorskip("bitsandbytes" if method == "nf4" else "hqq")
    model, float_model = tiny_model("llama", 0), tiny_model("llama", 0)
    errors = quantize_model(model, method, QuantizeRequest(QuantSpec(4, 32), None))
    assert len(errors) == 2 * 7 and all(0 < e.rel_error < 0.2 for e in errors)
    w = model.model.layers[0].mlp.down_proj.weight.detach()
    assert not torch.equal(w, float_model.model.layers[0].mlp.down_proj.weight)
    assert max(len(torch.unique(g)) for g in w.reshape(-1, 32)) <= 16


def test_hqq_beats_round_to_nearest_on_weight_error_at_3_bits():
    pytest.importorskip("hqq")
    spec = QuantSpec(3, 32)
    hqq = quantize_model(tiny_model("llama", 0), "hqq", QuantizeRequest(spec, None))
    rtn = quantize_model(tiny_model("llama", 0), "rtn", QuantizeRequest(spec, None))
    assert sum(e.rel_error for e in hqq) < sum(e.rel_error for e in rtn)
