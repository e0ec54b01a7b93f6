"""On the default model: a mixed-precision plan recovers at least half of the gap between
4-bit AWQ and float perplexity, and the checkpoint it produces delivers it."""
import json

import pytest

from awq_ref.checkpoint import load_checkpoint
from awq_ref.cli import main
from awq_ref.evaluate import EvalSettings, evaluate_checkpoint, evaluate_float, eval_tokens
from conformance import verify

AWQ = ["--model", "default", "--method", "awq", "--calib-samples", "4", "--seqlen", "256"]


@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    assert main(["quantize", *AWQ, "--out", str(root / "awq")]) == 0
    assert main(["plan", "--model", "default", "--checkpoint", str(root / "awq"), "--target", "0.5",
                 "--windows", "2", "--seqlen", "256", "--json", str(root / "plan.json")]) == 0
    assert main(["quantize", *AWQ, "--keep-layers", str(root / "plan.json"), "--out", str(root / "mixed")]) == 0
    return root


def test_plan_recovers_half_the_gap_and_the_mixed_checkpoint_delivers_it(plan_run):
    plan = json.loads((plan_run / "plan.json").read_text())["plan"]
    assert plan["recovered"] >= 0.5 and 0 < len(plan["keep_layers"]) < 30 and plan["extra_bytes"] > 0
    settings = EvalSettings(windows=2, seqlen=256)
    tokens = eval_tokens("default")
    fp = evaluate_float("default", tokens, settings).result.ppl
    awq = evaluate_checkpoint(plan_run / "awq", tokens, settings).result.ppl
    mixed = evaluate_checkpoint(plan_run / "mixed", tokens, settings).result.ppl
    assert fp < mixed < awq
    assert (awq - mixed) / (awq - fp) >= 0.5  # the written checkpoint, measured on the plan's windows


def test_mixed_checkpoint_declares_and_conforms(plan_run):
    plan = json.loads((plan_run / "plan.json").read_text())
    config = json.loads((plan_run / "mixed" / "config.json").read_text())["quantization_config"]
    assert config["modules_to_not_convert"] == plan["modules_to_not_convert"]
    model = load_checkpoint(plan_run / "mixed")
    kept = model.model.layers[plan["plan"]["keep_layers"][0]].self_attn.q_proj
    assert type(kept).__name__ == "Linear"
    assert verify(plan_run / "mixed").conforms
