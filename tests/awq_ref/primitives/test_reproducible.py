"""The numerics pin: calibrated goldens refuse to build off it, each pinned library matters,
and what the pin leaves free (MKL's own choice of instruction set) does not leak into bytes.

Each child runs ``golden/regenerate --check`` on the calibrated goldens (AWQ and GPTQ run
forwards, grid searches and a Cholesky), so a wrong pin shows up as drift in committed bytes.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from awq_harness import golden
from awq_harness.awq_ref.primitives import reproducible
from awq_harness.golden.build import build
from awq_harness.golden.specs import BY_NAME

REGENERATE = Path(golden.__file__).parent / "regenerate"
CALIBRATED = ["llama-gemm-g64-awq", "llama-gptq-g64-sym"]


def _check(env_extra: dict, pin_edit: str = "pass", names=tuple(CALIBRATED)) -> subprocess.CompletedProcess:
    """``golden/regenerate --check CALIBRATED`` in a child; ``pin_edit`` is Python run first
    (with ``r`` = awq_ref.primitives.reproducible) to weaken the pin for a negative control."""
    env = {k: v for k, v in os.environ.items() if k not in reproducible.PIN} | env_extra
    code = (
        f"import sys, runpy; import awq_harness.awq_ref.primitives.reproducible as r; {pin_edit}; "
        f"sys.argv = [{str(REGENERATE)!r}, '--check', *{list(names)!r}]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_this_process_is_not_pinned_and_calibrated_builds_refuse(tmp_path):
    assert not reproducible.is_pinned()  # pytest runs the machine's own kernels
    with pytest.raises(reproducible.NotPinnedError, match="must run with pinned numerics"):
        build(BY_NAME["llama-gemm-g64-awq"], tmp_path / "g")
    assert not (tmp_path / "g").exists()


def test_regenerate_restarts_itself_pinned_and_mkls_own_dispatch_does_not_leak_in():
    """Started with other kernels and threads asked for, and MKL told to dispatch as on an older
    CPU (MKL_ENABLE_INSTRUCTIONS): the pinned rebuild still gives the committed bytes."""
    run = _check({"ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "numerics pinned: ATEN_CPU_CAPABILITY=avx2" in run.stdout


def test_without_mkl_cbwr_mkl_dispatch_moves_calibrated_bytes():
    run = _check({"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, "del r.PIN['MKL_CBWR']", names=["llama-gemm-g64-awq"])
    assert run.returncode == 1 and "llama-gemm-g64-awq: DRIFT" in run.stdout


def test_other_aten_kernels_move_calibrated_bytes():
    run = _check(
        {},
        "r.PIN['ATEN_CPU_CAPABILITY'] = 'default'; r.ATEN_PINNED_CAPABILITY = 'DEFAULT'",
        names=["llama-gemm-g64-awq"],
    )
    assert run.returncode == 1 and "llama-gemm-g64-awq: DRIFT" in run.stdout


def test_pinned_context_sets_and_restores_threads(monkeypatch):
    import torch

    monkeypatch.setattr(reproducible, "unpinned_reasons", lambda: [])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with reproducible.pinned():
            assert torch.get_num_threads() == 1 and torch.get_float32_matmul_precision() == "highest"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
