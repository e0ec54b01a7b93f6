"""Our AWQ search chooses what AutoAWQ 0.2.9 chooses: per-channel scales and clip values.

Setting: a tiny seeded Llama (2 layers, hidden 128, GQA), 8 x 128 calibration tokens of Austen
text, w4 g64 with zero point, both tools in float32 (AutoAWQ computes in the model's dtype;
ours is told ``compute_dtype="float32"``), AutoAWQ's defaults otherwise (duo scaling, 20-point
grid, clip search on, q/k not clipped). AutoAWQ's choices are read off its
``_search_best_scale`` / ``_search_best_clip`` calls, with ``.cpu()`` copying as on a GPU
(``awq_peers.cpu_copies_like_gpu``; as shipped on a CPU its search runs on corrupted weights).

Tolerances, and why:
  * scales: the same grid point must win for every group, so the scales agree to float32
    rounding of the same formula (rtol 1e-5); a different winner moves them by percents.
  * clip values: max|w| x (1 - i/20) per (row, group); the winner must be the same grid step
    for at least 99% of (row, group) pairs and within one step for all. The clip loss is a mean
    of squared partial products that AutoAWQ forms as a difference of two products and we as
    one product of the weight difference (same quantity, less cancellation), so two grid steps
    whose losses tie to float32 rounding may go either way.
Observed (tox -e peers, 2026-11-24): every scale bit-identical (6 groups), every clip value
equal (10 linears); AutoAWQ as shipped on a CPU differs from itself by up to 93% in a scale.
"""
import pytest
import torch

from tests.peers import awq_peers

pytestmark = pytest.mark.peers
GROUP = 64
# Adjacent clip steps (1 - i/20) / (1 - (i+1)/20) lie in [0.917, 0.95]; two steps apart in [0.846, 0.9].
ONE_STEP = 0.91


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    pytest.importorskip("awq", reason="AutoAWQ 0.2.9: tox -e peers")
    from awq_harness.awq_ref.data.calibration import calibration_blocks
    from awq_harness.awq_ref.data.tiny import save_tiny_model, tiny_tokenizer

    folder = save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=31)
    return folder, calibration_blocks(tiny_tokenizer(), 8, 128)


@pytest.fixture(scope="module")
def choices(setting, tmp_path_factory):
    from awq_harness.awq_ref.methods.awq import AwqSearchConfig

    folder, blocks = setting
    out = tmp_path_factory.mktemp("out")
    theirs = awq_peers.run_autoawq(folder, blocks, GROUP, torch.float32, out / "autoawq", record=True)
    shipped = awq_peers.run_autoawq(folder, blocks, GROUP, torch.float32, out / "shipped", fix_aliasing=False,
                                    record=True)
    ours = awq_peers.run_ours(folder, blocks, GROUP, out / "ours", AwqSearchConfig(compute_dtype="float32"))
    return theirs.choices, shipped.choices, ours.choices


def test_every_scaling_group_gets_autoawqs_scales(choices):
    theirs, _, ours = choices
    assert sorted(theirs["scales"]) == sorted(ours["scales"])  # same groups: (layer, prev op)
    for key, scales in theirs["scales"].items():
        torch.testing.assert_close(ours["scales"][key].float(), scales, rtol=1e-5, atol=0, msg=f"group {key}")


def test_every_clipped_linear_gets_autoawqs_clip_values(choices):
    theirs, _, ours = choices
    names = {(i, name): f"model.layers.{i}.{name}" for i, name in theirs["clips"]}
    assert sorted(names.values()) == sorted(ours["clips"])  # same linears (q/k skipped by both)
    for key, max_val in theirs["clips"].items():
        mine = ours["clips"][names[key]].float()
        equal = torch.isclose(mine, max_val, rtol=1e-5, atol=0).float().mean()
        assert equal >= 0.99, f"{key}: only {equal:.2%} of clip values equal"
        ratio = mine / max_val  # (1 - i/20) / (1 - j/20) for the same group max
        assert ((ratio > ONE_STEP) & (ratio < 1 / ONE_STEP)).all(), f"{key}: a clip value is more than one step off"


def test_autoawq_as_shipped_on_a_cpu_chooses_differently(choices):
    """The negative control: the aliasing bug changes AutoAWQ's own choices, and this comparison sees it."""
    theirs, shipped, _ = choices
    differ = [k for k in theirs["scales"] if not torch.allclose(theirs["scales"][k], shipped["scales"][k], rtol=1e-3)]
    assert differ, "AutoAWQ's CPU aliasing bug no longer changes its scale search; drop cpu_copies_like_gpu"
