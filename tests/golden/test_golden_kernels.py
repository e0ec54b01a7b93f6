"""The goldens through the Triton kernels give the reference path's logits.

Natively on GPU runners (``pytest -m gpu``) for every GEMM golden; on CPU one golden runs
under the Triton interpreter as a check of the plumbing (the interpreter is slow)."""
import json

import pytest
import torch

import awq_harness.awq_ref.modules.qlinear as qlinear
from awq_harness import golden
from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.golden.manifest import TOKEN_IDS

GEMM = [n for n in golden.names()
        if json.loads((golden.path(n) / "config.json").read_text())["quantization_config"].get("version", "") == "gemm"]
ON_CPU = "llama-gemm-g64-rtn"
REL_TOL = 1e-4  # fp32 activations: the kernels accumulate in fp32, only summation order differs


def _logits(name, kernels, device, monkeypatch):
    monkeypatch.setattr(qlinear, "KERNELS", kernels)
    model = load_checkpoint(golden.path(name)).to(device)
    used = []
    for m in model.modules():
        if isinstance(m, qlinear.AwqLinear):
            m.register_forward_hook(lambda mod, args, out: used.append(qlinear._triton_linear(mod, args[0])))
    with torch.no_grad():
        logits = model(torch.tensor([TOKEN_IDS], device=device)).logits.float().cpu()
    return logits, used


def _check(name, device, monkeypatch):
    ref, _ = _logits(name, "torch", device, monkeypatch)
    got, used = _logits(name, "triton", device, monkeypatch)
    assert used and all(fn is not None for fn in used)  # every quantised linear ran a kernel
    assert (got - ref).abs().max() <= REL_TOL * ref.abs().max()


def test_golden_through_interpreted_kernels(monkeypatch):
    _check(ON_CPU, "cpu", monkeypatch)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GEMM)
def test_goldens_through_gpu_kernels(name, monkeypatch):
    _check(name, "cuda", monkeypatch)
