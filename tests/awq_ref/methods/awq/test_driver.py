"""The AWQ driver end to end on tiny models: deterministic, fake == real, better than RTN."""
import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, load_checkpoint, save_checkpoint
from awq_harness.awq_ref.data.tiny import FAMILIES, tiny_model
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.awq_ref.methods.awq.run import run_awq

SPEC = QuantSpec(4, 64)
CALIB = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(11))
EVAL = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(12))


def logits(model, ids=EVAL):
    with torch.no_grad():
        return model(ids).logits.float()


def test_same_inputs_same_bytes():
    states = []
    for _ in range(2):
        model = tiny_model("llama", seed=6)
        run_awq(model, CALIB, SPEC, mode="real")
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_fake_and_real_modes_compute_the_same_model(tmp_path):
    """Llama has no biases (AwqLinear stores a bias in fp16, the fake path keeps it float)."""
    fake, real = tiny_model("llama", seed=7), tiny_model("llama", seed=7)
    run_awq(fake, CALIB, SPEC, mode="fake")
    run_awq(real, CALIB, SPEC, mode="real")
    torch.testing.assert_close(logits(real), logits(fake), rtol=1e-5, atol=1e-5)
    save_checkpoint(real, tmp_path / "ckpt", AwqConfig(SPEC, "gemm"))  # norms, embeddings now fp16
    torch.testing.assert_close(logits(load_checkpoint(tmp_path / "ckpt")), logits(fake), rtol=1e-2, atol=5e-3)


# AWQ minimises each block's output error, not the logits' error. On the tiny Gemma 2 at 4 bits the
# two disagree: AWQ's logits are closer than RTN's on only about half the seeds (3 of seeds 8-13, tied
# head; 4 of 6 untied), at most 1.4x further when not. There the test only bounds AWQ's error; a scale
# that was not folded back, for example, is orders of magnitude further.
WITHIN = {("gemma2", 4): 1.5}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bits", [4, 3])
def test_awq_is_closer_to_the_float_model_than_rtn(family, bits):
    spec = QuantSpec(bits, 64)
    reference = logits(tiny_model(family, seed=8))
    awq_model, rtn_model = tiny_model(family, seed=8), tiny_model(family, seed=8)
    run_awq(awq_model, CALIB, spec)
    quantize_model(rtn_model, "rtn", QuantizeRequest(spec, None))
    awq_err = (logits(awq_model) - reference).pow(2).mean()
    rtn_err = (logits(rtn_model) - reference).pow(2).mean()
    assert awq_err < rtn_err * WITHIN.get((family, bits), 1.0)


def test_choices_are_recorded_and_change_the_result():
    plain, duo = tiny_model("llama", seed=9), tiny_model("llama", seed=9)
    a = run_awq(plain, CALIB, SPEC, AwqSearchConfig(duo_scaling=False, clip=False), keep_tensors=True)
    b = run_awq(duo, CALIB, SPEC, AwqSearchConfig(), keep_tensors=True)
    assert a.clips == {} and len(b.clips) == 2 * 5  # 2 layers x (v, o, gate, up, down)
    assert len(a.groups) == len(b.groups) == 2 * 3  # GQA: v -> o skipped
    assert any(not torch.equal(x.scales, y.scales) for x, y in zip(a.groups, b.groups))
    assert all(0 <= g.alpha < 1 for g in a.groups + b.groups)


def test_bfloat16_search_stays_close_to_float32():
    m32, m16 = tiny_model("llama", seed=10), tiny_model("llama", seed=10)
    reference = logits(tiny_model("llama", seed=10))
    run_awq(m32, CALIB, SPEC, AwqSearchConfig(compute_dtype="float32"))
    run_awq(m16, CALIB, SPEC, AwqSearchConfig(compute_dtype="bfloat16"))
    err32 = (logits(m32) - reference).pow(2).mean()
    err16 = (logits(m16) - reference).pow(2).mean()
    assert err16 < 1.5 * err32
    assert next(m16.parameters()).dtype == torch.float32  # the master weights stay float32
