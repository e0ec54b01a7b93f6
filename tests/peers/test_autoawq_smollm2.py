"""AutoAWQ 0.2.9 run on this CPU writes a SmolLM2-135M checkpoint that computes garbage.

Slow (about 12 minutes alone, 27 under load): ``tox -e golden-tf4 -- -m slow
tests/peers/test_autoawq_smollm2.py`` (AutoAWQ's own line, transformers 4.51.3).

What goes wrong (found with ``verify --reference``): the quantised path departs from the
float one at layer 0, where q/k/v already carry the per-channel AWQ scale *twice* while the
norm was divided by it once. AutoAWQ's scale search saves the block's "original" weights as
``{k: v.cpu() ...}``; on a CPU run ``.cpu()`` returns the same tensor, not a copy, so the
in-place ``fc.weight.mul_(scales)`` of the grid search also changes the saved originals and
the final ``load_state_dict`` restores scaled weights, which ``apply_scale`` scales again.
On a GPU ``.cpu()`` copies, which is why the tool works there.
"""
import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint, read_tensors
from awq_harness.awq_ref.data.corpus import calibration_texts
from awq_harness.awq_ref.data.models import default_model_dir
from awq_harness.conformance import verify

pytestmark = [pytest.mark.slow, pytest.mark.peers]


@pytest.fixture(scope="module")
def autoawq_smollm2(tmp_path_factory):
    awq = pytest.importorskip("awq", reason="AutoAWQ 0.2.9: tox -e golden-tf4")
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("autoawq") / "smollm2-w4-g64"
    tok = AutoTokenizer.from_pretrained(default_model_dir())
    model = awq.AutoAWQForCausalLM.from_pretrained(str(default_model_dir()), torch_dtype=torch.float32)
    config = {"zero_point": True, "q_group_size": 64, "w_bit": 4, "version": "GEMM"}
    model.quantize(tok, quant_config=config, calib_data=calibration_texts()[:2000], max_calib_samples=32,
                   max_calib_seq_len=512)
    model.save_quantized(str(out))
    return out


def test_verifier_flags_the_autoawq_checkpoint(autoawq_smollm2):
    report = verify(autoawq_smollm2, reference=default_model_dir())
    (finding,) = report.of_rule("functional.perplexity")
    assert finding.severity == "error" and report.functional["ppl_ratio"] > 100
    assert "first departs from the float one at layer 0" in finding.message
    structural = [f for f in report.findings if f.severity == "error" and not f.rule.startswith("functional.")]
    assert structural == []  # well formed: only the function gives it away


def test_layer_0_qkv_carry_the_scale_twice(autoawq_smollm2):
    q, f = read_tensors(autoawq_smollm2), read_tensors(default_model_dir())
    norm = "model.layers.0.input_layernorm.weight"
    s = f[norm].float() / q[norm].float()  # the scale folded into the norm
    layer = load_checkpoint(autoawq_smollm2).model.layers[0].self_attn
    for name in ("q_proj", "k_proj", "v_proj"):
        w, w_hat = f[f"model.layers.0.self_attn.{name}.weight"].float(), getattr(layer, name).dequantized_weight()
        per_channel = (w_hat * w).sum(0) / (w * w).sum(0)  # least-squares factor per input channel
        assert abs(float((per_channel / s**2).median()) - 1) < 0.05, name
        assert abs(float((per_channel / s).median()) - 1) > 0.2, name
