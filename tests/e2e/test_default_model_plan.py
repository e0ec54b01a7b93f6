"""On the default model, step by step as a user runs it: ``quantize`` (AWQ) -> ``plan`` ->
``quantize --keep-layers plan.json``; the mixed checkpoint delivers, measured afresh, the
perplexities the plan measured on its selection windows, declares what it kept and conforms.

Whether a plan holds up on text it was not chosen on is the slow validation test's question
(tests/e2e/test_default_model_plan_validation.py). AWQ calibrates on 2 x 256 tokens with
its scale-search loss on one block, and the plan chooses on one 256-token window, so that each
step fits the default run on any CPU; the steps share one xdist group, so they run in order on
one worker and each test pays for its own step only.
"""

import json

import pytest

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.eval.evaluate import EvalSettings, eval_tokens, evaluate_checkpoint
from awq_harness.conformance import verify

pytestmark = pytest.mark.xdist_group("default-model-plan")

AWQ = ["--model", "default", "--method", "awq", "--calib-samples", "2", "--seqlen", "256", "--loss-blocks", "1"]
WINDOWS, SEQLEN = 1, 256


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("plan")


@pytest.fixture(scope="module")
def awq(root):
    assert main(["quantize", *AWQ, "--out", str(root / "awq")]) == 0
    return root / "awq"


@pytest.fixture(scope="module")
def plan(root, awq):
    assert (
        main(
            [
                "plan",
                "--model",
                "default",
                "--checkpoint",
                str(awq),
                "--target",
                "0.5",
                "--windows",
                str(WINDOWS),
                "--seqlen",
                str(SEQLEN),
                "--val-windows",
                "1",
                "--val-seqlen",
                "256",
                "--json",
                str(root / "plan.json"),
            ]
        )
        == 0
    )
    return json.loads((root / "plan.json").read_text())


@pytest.fixture(scope="module")
def mixed(root, plan):
    assert main(["quantize", *AWQ, "--keep-layers", str(root / "plan.json"), "--out", str(root / "mixed")]) == 0
    return root / "mixed"


def test_awq_checkpoint_conforms(awq):
    assert verify(awq).conforms


def test_plan_keeps_some_layers_for_half_the_gap(plan):
    chosen = plan["plan"]
    assert chosen["recovered"] >= 0.5 and 0 < len(chosen["keep_layers"]) < 30 and chosen["extra_bytes"] > 0
    assert chosen["ppl_reference"] < chosen["ppl_plan"] < chosen["ppl_quantized"]


def test_mixed_checkpoint_delivers_what_the_plan_measured_on_its_windows(awq, plan, mixed):
    settings, tokens = EvalSettings(windows=WINDOWS, seqlen=SEQLEN), eval_tokens("default")  # float32, as plan
    assert evaluate_checkpoint(awq, tokens, settings).result.ppl == pytest.approx(
        plan["plan"]["ppl_quantized"], rel=1e-3
    )
    assert evaluate_checkpoint(mixed, tokens, settings).result.ppl == pytest.approx(plan["plan"]["ppl_plan"], rel=1e-3)


def test_mixed_checkpoint_declares_and_conforms(plan, mixed):
    config = json.loads((mixed / "config.json").read_text())["quantization_config"]
    assert config["modules_to_not_convert"] == plan["modules_to_not_convert"]
    kept = load_checkpoint(mixed).model.layers[plan["plan"]["keep_layers"][0]].self_attn.q_proj
    assert type(kept).__name__ == "Linear"
    assert verify(mixed).conforms
