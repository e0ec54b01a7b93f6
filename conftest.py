"""Project-wide pytest set-up.

* ``TRITON_INTERPRET=1`` is set here, before any kernel module is imported, when no CUDA
  device is present: Triton kernels then run on the CPU under Triton's interpreter.
* Markers ``gpu``, ``slow`` and ``peers`` (registered in pyproject.toml); ``gpu`` tests are
  skipped with a reason when there is no CUDA device.
* torch runs on one thread unless ``AWQ_HARNESS_THREADS`` says otherwise (2 shared cores).
* Hypothesis profiles: ``ci`` (derandomised, fixed example counts) and ``dev``.
* Hub access is off: nothing may download weights or data at run time.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# --results-json PATH; --checkpoint CKPT (also registered by the pytest11 entry point once installed)
pytest_plugins = ["awq_harness.reports.plugin", "awq_harness.conformance.plugin"]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


HAS_CUDA = _cuda_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

torch.set_num_threads(int(os.environ.get("AWQ_HARNESS_THREADS", "1")))

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (GPU runners run: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
