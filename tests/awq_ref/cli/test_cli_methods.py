"""The CLI with --method awq|gptq and the eval table with lm-eval, on a tiny saved model."""

import json

import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.awq_ref.primitives.compute_dtype import auto_choice


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=2)


def _quantize_awq(model_dir, out, *extra) -> int:
    """``awq-harness quantize --method awq`` on 2 x 64 tokens, scale loss on one block, plus ``extra``."""
    return main(["quantize", "--model", str(model_dir), "--method", "awq", "--calib-samples", "2", "--seqlen", "64",
                 "--loss-blocks", "1", *extra, "--out", str(out)])


def test_quantize_with_awq_records_every_choice(model_dir, tmp_path, capsys):
    out = tmp_path / "awq"
    code = _quantize_awq(model_dir, out, "--calib-dtype", "bfloat16", "--no-duo-scaling")
    assert code == 0, capsys.readouterr().err
    meta = json.loads((out / "awq_harness.json").read_text())
    assert meta["method"] == "awq"
    assert meta["request"]["awq"] == {
        "n_grid": 20,
        "duo_scaling": False,
        "clip": True,
        "clip_grid": 20,
        "max_shrink": 0.5,
        "clip_tokens": 512,
        "compute_dtype": "bfloat16",
        "loss_blocks": 1,
    }
    assert (
        meta["calib_dtype_choice"]["requested"] == "bfloat16" and "explicitly" in meta["calib_dtype_choice"]["reason"]
    )
    model = load_checkpoint(out)
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[5, 6, 7, 8]])).logits).all()


def test_quantize_defaults_to_the_auto_dtype_and_records_why(model_dir, tmp_path, capsys):
    out = tmp_path / "awq-auto"
    code = _quantize_awq(model_dir, out)
    printed = capsys.readouterr().out
    assert code == 0
    meta = json.loads((out / "awq_harness.json").read_text())
    choice = meta["calib_dtype_choice"]
    assert choice == auto_choice().to_json() and choice["requested"] == "auto"
    assert meta["request"]["awq"]["compute_dtype"] == meta["request"]["gptq"]["compute_dtype"] == choice["dtype"]
    assert f"calibration dtype: {choice['dtype']} (auto: CPU {choice['cpu_capability']}" in printed


def test_quantize_with_gptq_into_an_awq_layout_is_a_clear_error(model_dir, tmp_path, capsys):
    code = main(
        [
            "quantize",
            "--model",
            str(model_dir),
            "--method",
            "gptq",
            "--calib-samples",
            "2",
            "--seqlen",
            "64",
            "--out",
            str(tmp_path / "g"),
        ]
    )
    assert code == 2 and "--method gptq writes --format gptq, not --format gemm" in capsys.readouterr().err


def test_eval_table_with_lm_eval(model_dir, tmp_path, capsys):
    pytest.importorskip("lm_eval")
    out = tmp_path / "table.json"
    code = main(
        [
            "eval",
            "--model",
            str(model_dir),
            "--methods",
            "awq,gptq",
            "--w-bit",
            "3",
            "--windows",
            "2",
            "--seqlen",
            "256",
            "--calib-samples",
            "2",
            "--calib-seqlen",
            "64",
            "--lm-eval",
            "--lm-eval-docs",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    rows = json.loads(out.read_text())["rows"]
    assert [r["label"] for r in rows] == ["fp", "awq w3 g64", "gptq w3 g64"]
    assert all(r["ppl"] > 1 and r["lm_eval"]["word_perplexity"] > 1 and r["lm_eval"]["documents"] == 1 for r in rows)


def test_rtn_still_quantises_through_the_extended_request(model_dir, tmp_path, capsys):
    out = tmp_path / "rtn"
    assert main(["quantize", "--model", str(model_dir), "--method", "rtn", "--out", str(out)]) == 0
    meta = json.loads((out / "awq_harness.json").read_text())
    assert meta["method"] == "rtn" and meta["request"]["spec"] == {"bits": 4, "group_size": 64, "zero_point": True}
    model = load_checkpoint(out)
    linears = [m for m in model.modules() if type(m).__name__ == "AwqLinear"]
    assert len(linears) == 14 and all((m.spec.bits, m.spec.group_size) == (4, 64) for m in linears)  # 2 layers x 7
