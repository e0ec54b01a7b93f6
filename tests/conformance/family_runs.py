"""Tiny seeded models of a family, quantised once per test module through the CLI, and copies of
their checkpoints with one edit: shared by the dense-family and MoE-family conformance tests."""
from __future__ import annotations

import shutil
from pathlib import Path

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.conformance import verify
from tests.conformance.helpers import edit_tensors

METHODS = {"awq": "gemm", "rtn": "gemm", "gptq": "gptq"}
FOLD = "reference.fold-consistency"


def float_model(root: Path, family: str) -> Path:
    fp = root / family / "fp"
    if not (fp / "config.json").is_file():
        save_tiny_model(fp, family, seed=1)
    return fp


def quantized(root: Path, family: str, method: str, *extra: str) -> Path:
    """``method``'s checkpoint of the family's float model (w4 g64, 8 x 64 calibration), built once."""
    out = root / family / ("-".join((method, *extra)).replace("/", "_") or method)
    if not (out / "config.json").is_file():
        code = main(["quantize", "--model", str(float_model(root, family)), "--method", method,
                     "--format", METHODS[method], "--group-size", "64", "--calib-samples", "8", "--seqlen", "64",
                     "--out", str(out), *extra])
        assert code == 0
    return out


def edited_copy(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint ``src`` at ``dst`` whose tensors ``edit(tensors)`` changed in place."""
    shutil.copytree(src, dst)
    edit_tensors(dst, edit)
    return dst


def fold_findings(checkpoint: Path, reference: Path):
    return verify(checkpoint, reference=reference).of_rule(FOLD)


def assert_conforms_and_functions(report) -> None:
    """No error, no fold finding, no internal error, and the functional check ran (ppl ratio near 1)."""
    errors = [f for f in report.findings if f.severity == "error"]
    assert report.conforms and not errors, errors
    assert not report.of_rule(FOLD) and not report.of_rule("verifier.internal")
    (ppl,) = report.of_rule("functional.perplexity")
    assert ppl.severity == "info" and 0.9 < report.functional["ppl_ratio"] < 1.1
    assert not report.of_rule("functional.skipped")
