"""``auto`` picks bfloat16 only where this CPU multiplies it natively; explicit dtypes win."""
import os
import subprocess
import sys

import pytest
import torch

from awq_harness.awq_ref.primitives import compute_dtype as cd


@pytest.fixture
def fresh_auto():
    cd._auto_for.cache_clear()
    yield
    cd._auto_for.cache_clear()


def _probe_must_not_run():
    raise AssertionError("the probe ran")


def test_explicit_dtype_wins_without_probing(monkeypatch, fresh_auto):
    monkeypatch.setattr(cd, "probe_matmul_ms", _probe_must_not_run)
    for name in ("float32", "bfloat16"):
        choice = cd.choose(name)
        assert (choice.dtype, choice.requested, choice.torch_dtype) == (name, name, cd.COMPUTE_DTYPES[name])


def test_without_bf16_flags_auto_is_float32_and_skips_the_probe(monkeypatch, fresh_auto):
    monkeypatch.setattr(cd, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(cd, "probe_matmul_ms", _probe_must_not_run)
    choice = cd.choose("auto")
    assert choice.dtype == "float32" and "emulated" in choice.reason and choice.probe_ms is None


@pytest.mark.parametrize("bf16_ms, expected", [(0.3, "bfloat16"), (0.79, "bfloat16"), (1.6, "bfloat16"),
                                               (2.99, "bfloat16"), (3.0, "float32"), (40.0, "float32")])
def test_with_bf16_flags_the_probe_decides(monkeypatch, fresh_auto, bf16_ms, expected):
    """Only emulation (tens of times slower) sends auto to float32; a native bf16 path slowed by a
    busy machine (1.6x) stays bfloat16, so the choice does not flip with load."""
    monkeypatch.setattr(cd, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(cd, "probe_matmul_ms", lambda: {"float32": 1.0, "bfloat16": bf16_ms})
    choice = cd.choose("auto")
    assert choice.dtype == expected and choice.probe_ms == {"float32": 1.0, "bfloat16": bf16_ms}
    assert choice.to_json()["reason"] == choice.reason and f"{bf16_ms:.2f}x" in choice.reason


def test_auto_is_measured_once_per_process(monkeypatch, fresh_auto):
    calls = []
    monkeypatch.setattr(cd, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(cd, "probe_matmul_ms", lambda: calls.append(1) or {"float32": 1.0, "bfloat16": 0.5})
    assert cd.choose("auto") is cd.choose("auto") is cd.auto_choice("cpu") is cd.auto_choice() and len(calls) == 1


def test_float16_and_unknown_names_are_refused():
    for name in ("float16", "fp32"):
        with pytest.raises(ValueError, match="compute dtype must be one of"):
            cd.choose(name)


def test_real_probe_times_both_dtypes():
    probe = cd.probe_matmul_ms()
    assert set(probe) == {"float32", "bfloat16"} and all(v > 0 for v in probe.values())


def test_bf16_held_off_native_kernels_resolves_to_float32():
    """oneDNN held to AVX2 emulates bf16 matmul even on a CPU with AMX: the probe, not the
    flags, must then send ``auto`` to float32 (on a CPU without the flags it is float32 anyway)."""
    env = os.environ | {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    code = "from awq_harness.awq_ref.primitives.compute_dtype import auto_choice; c = auto_choice(); print(c.dtype, c.probe_ms)"  # noqa: E501 - the awq_harness prefix
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "float32", out


def test_machine_line_names_capability_and_choice():
    line = cd.machine_line()
    assert torch.backends.cpu.get_cpu_capability() in line and cd.auto_choice().dtype in line
