"""quantize --format gptq writes GPTQ's own layout (it verifies as GPTQ); only GPTQ's numbers go there.
The default (layer-at-a-time) path and --in-memory write the same files."""
import filecmp
import json

import pytest

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/awq_ref/conftest.py

CALIB = ["--calib-samples", "2", "--seqlen", "64"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=6)


@pytest.mark.parametrize("symmetric", [[], ["--no-zero-point"]])
def test_gptq_format_verifies_as_gptq(model_dir, tmp_path, capsys, symmetric):
    out = tmp_path / "gptq"
    code = main(["quantize", "--model", str(model_dir), "--method", "gptq", "--format", "gptq", *CALIB, *symmetric,
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    assert q["quant_method"] == "gptq" and q["checkpoint_format"] == "gptq" and q["sym"] == bool(symmetric)
    assert main(["verify", str(out), "--json", str(tmp_path / "f.json")]) == 0
    findings = json.loads((tmp_path / "f.json").read_text())
    assert findings["format"] == "gptq" and not [f for f in findings["findings"] if f["severity"] == "error"]


@pytest.mark.parametrize("args, message", [
    (["--method", "rtn", "--format", "gptq"], "--method rtn writes --format gemm|gemv, not --format gptq"),
    (["--method", "awq", "--format", "gptq"], "--method awq writes --format gemm|gemv, not --format gptq"),
    (["--method", "gptq", "--format", "gemv"], "--method gptq writes --format gptq, not --format gemv"),
    (["--method", "gptq", "--format", "gptq", "--keep-layers", "0"],
     "--keep-layers: --method gptq keeps no layers or linears in float (use --method awq|rtn)"),
])
def test_mismatched_method_and_format_is_one_clear_line(model_dir, tmp_path, capsys, args, message):
    assert main(["quantize", "--model", str(model_dir), *args, *CALIB, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "x").exists()


@pytest.mark.parametrize("args", [["--method", "awq", "--format", "gemv", "--keep-layers", "1"],
                                  ["--method", "gptq", "--format", "gptq"]])
def test_default_path_and_in_memory_write_the_same_files(model_dir, tmp_path, capsys, args):
    for name, extra in (("streamed", []), ("in-memory", ["--in-memory"])):
        code = main(["quantize", "--model", str(model_dir), *args, *CALIB, "--out", str(tmp_path / name), *extra])
        assert code == 0, capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / "streamed").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "in-memory").iterdir()) and "awq_harness.json" in names
    assert [n for n in names if not filecmp.cmp(tmp_path / "streamed" / n, tmp_path / "in-memory" / n,
                                                shallow=False)] == []
