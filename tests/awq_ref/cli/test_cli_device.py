"""``--device`` on quantize, eval, plan and verify: CUDA asked for where there is none is one line
and exit 2 with nothing written; ``--device cpu`` writes the files the default writes."""
import filecmp

import pytest
import torch

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model

CUDA_ABSENT = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=6)


@pytest.mark.skipif(not CUDA_ABSENT, reason="checks the machine without CUDA")
@pytest.mark.parametrize("command", ["quantize", "eval", "plan", "verify"])
def test_cuda_without_cuda_is_one_line_and_exit_2(model_dir, tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = {"quantize": ["quantize", "--model", str(model_dir), "--out", str(out)],
            "eval": ["eval", "--model", str(model_dir), "--json", str(out)],
            "plan": ["plan", "--model", str(model_dir), "--checkpoint", str(model_dir), "--json", str(out)],
            "verify": ["verify", str(model_dir), "--reference", str(model_dir), "--json", str(out)]}[command]
    assert main([*argv, "--device", "cuda:0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"awq-harness {command}: error: --device cuda:0: torch") and "\n" not in err
    assert not out.exists()


def test_a_malformed_device_is_one_line_and_exit_2(model_dir, tmp_path, capsys):
    assert main(["quantize", "--model", str(model_dir), "--device", "gpu0", "--out", str(tmp_path / "o")]) == 2
    assert "expected auto|cpu|cuda|cuda:N" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_device_cpu_writes_the_files_of_the_default(model_dir, tmp_path):
    for name, extra in (("default", []), ("cpu", ["--device", "cpu"])):
        assert main(["quantize", "--model", str(model_dir), "--calib-dtype", "float32",
                     "--out", str(tmp_path / name), *extra]) == 0
    names = sorted(p.name for p in (tmp_path / "cpu").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "default", tmp_path / "cpu", names, shallow=False)
    assert (mismatch, errors) == ([], []) and any(n.endswith(".safetensors") for n in match)
