"""``loss_blocks``: the scale-search loss on a subset of calibration blocks, statistics on all."""
import pytest
import torch

from awq_harness.awq_ref.data.tiny import FAMILIES, tiny_model
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.awq.blocks import block_rows, select_blocks
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from tests.awq_ref.methods.awq.run import run_awq

SPEC = QuantSpec(4, 64)
CALIB = torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(21))
EVAL = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(22))


def test_rows_are_evenly_spaced_and_include_both_ends():
    assert block_rows(128, 16).tolist() == torch.linspace(0, 127, 16).round().long().tolist()
    assert block_rows(8, 2).tolist() == [0, 7]
    assert block_rows(8, 1).tolist() == [0]
    assert block_rows(8, 8) is None and block_rows(8, 20) is None and block_rows(8, None) is None


def test_per_block_kwargs_follow_the_rows_and_shared_ones_pass():
    x = torch.arange(4 * 3 * 2.0).reshape(4, 3, 2)
    mask, rotary = torch.arange(4.0).reshape(4, 1, 1, 1), (torch.ones(1, 3, 2), torch.zeros(1, 3, 2))
    rows = torch.tensor([1, 3])
    picked, kwargs = select_blocks(x, {"attention_mask": mask, "position_embeddings": rotary, "use_cache": False},
                                   rows)
    assert torch.equal(picked, x[[1, 3]])
    assert kwargs["attention_mask"].flatten().tolist() == [1.0, 3.0]
    assert kwargs["position_embeddings"] is not rotary and torch.equal(kwargs["position_embeddings"][0], rotary[0])
    assert kwargs["use_cache"] is False


def test_loss_on_every_block_is_the_default_bit_for_bit():
    default, all_blocks = tiny_model("llama", seed=23), tiny_model("llama", seed=23)
    run_awq(default, CALIB, SPEC, mode="real")
    run_awq(all_blocks, CALIB, SPEC, AwqSearchConfig(loss_blocks=len(CALIB)), mode="real")
    a, b = default.state_dict(), all_blocks.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_loss_sees_the_chosen_blocks_and_the_statistics_see_all():
    """Layer 0's first group: at alpha = 0 the duo candidate 1 / (s_W + 1e-4) does not depend on
    s_X, so a loss on block 0 alone equals that of a run calibrated on block 0 alone; at alpha > 0
    the candidates differ because s_X still comes from all eight blocks."""
    full = run_awq(tiny_model("llama", seed=24), CALIB, SPEC).groups[0].losses
    one = run_awq(tiny_model("llama", seed=24), CALIB, SPEC, AwqSearchConfig(loss_blocks=1)).groups[0].losses
    alone = run_awq(tiny_model("llama", seed=24), CALIB[:1], SPEC).groups[0].losses
    assert one[0] == pytest.approx(alone[0], rel=1e-6) and one[0] != pytest.approx(full[0], rel=1e-3)
    assert all(a != pytest.approx(b, rel=1e-6) for a, b in zip(one[1:], alone[1:]))


@pytest.mark.parametrize("family", FAMILIES)
def test_two_of_eight_loss_blocks_still_beat_rtn(family):
    with torch.no_grad():
        reference = tiny_model(family, seed=25)(EVAL).logits
        subset, baseline = tiny_model(family, seed=25), tiny_model(family, seed=25)
        run_awq(subset, CALIB, SPEC, AwqSearchConfig(loss_blocks=2))
        quantize_model(baseline, "rtn", QuantizeRequest(SPEC, None))
        assert (subset(EVAL).logits - reference).pow(2).mean() < (baseline(EVAL).logits - reference).pow(2).mean()
