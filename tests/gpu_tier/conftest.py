"""GPU tier: ``pytest -m gpu tests/gpu_tier`` on a CUDA runner (``bash .ci/gpu-check``); its CPU
dry mode (tiny model, interpreter) runs in the default run. The folder is not called ``gpu``:
without CUDA the root conftest skips every test with a node named ``gpu``, dry mode included.

``AWQ_GPU_BASELINE_WRITE=1`` rewrites this GPU's perplexity baseline (baselines/<gpu>.json)
from the run instead of judging the run against it; review the diff, then commit it."""
from __future__ import annotations

import os

import pytest

from awq_harness import kernels


@pytest.fixture(scope="session")
def dry_mode() -> None:
    if not kernels.triton_can_run("cpu"):
        pytest.skip("dry mode runs on the CPU interpreter (TRITON_INTERPRET=1); a GPU runs the real thing")


@pytest.fixture(scope="session")
def write_gpu_baseline() -> bool:
    return os.environ.get("AWQ_GPU_BASELINE_WRITE") == "1"
