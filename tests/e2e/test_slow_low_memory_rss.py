"""Slow: peak memory of quantising a model much larger than one decoder layer, layer at a time
(the default) against --in-memory, for RTN and AWQ, at two depths (4 and 12 layers): the
layer-at-a-time peak must not grow with depth, the in-memory one grows by the float model.

Builds synthetic Llamas (hidden 1024, 45 MB per float32 layer; 12 layers are 302 MB of fp16
safetensors) in a temporary folder, one tensor at a time, and runs ``awq-harness quantize``
in a child process per path; each child reports its own peak RSS (``ru_maxrss``). A child
that only imports and builds the model's skeleton on ``meta`` (no weights) is measured the
same way and subtracted. Prints a table, attaches the numbers to the test
(``record_property``) and writes ``low_memory_rss.json`` into ``$AWQ_HARNESS_RESULTS_DIR``
when that is set.
Run: ``OMP_NUM_THREADS=1 pytest -m slow tests/e2e/test_slow_low_memory_rss.py -s``.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights

from awq_harness.awq_ref.checkpoint.lazy import open_lazy
from awq_harness.awq_ref.checkpoint.safetensors_stream import ShardedWriter, TensorSpec
from awq_harness.awq_ref.data.tiny import tiny_config, tiny_tokenizer
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.model.compat import causal_lm_from_config

pytestmark = pytest.mark.slow

SHALLOW, LAYERS, HIDDEN, INTERMEDIATE, VOCAB = 4, 12, 1024, 2816, 8192
PEAK = "import resource, sys; from awq_harness.awq_ref.cli import main; code = main(sys.argv[1:]); " \
       "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"
SKELETON_ONLY = "import resource, sys; from awq_harness import awq_ref; import awq_harness.awq_ref.cli; " \
                "from awq_harness.awq_ref.checkpoint.lazy import open_lazy; open_lazy(sys.argv[1]); " \
                "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
RUNS = {"rtn": [], "awq": ["--calib-samples", "8", "--seqlen", "128"]}


def _write_synthetic_model(folder, layers: int) -> None:
    """Random fp16 weights written tensor by tensor, so building it needs no model in memory."""
    config = tiny_config("llama", hidden=HIDDEN, intermediate=INTERMEDIATE, layers=layers)
    config.vocab_size = VOCAB
    config.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    with init_empty_weights():
        skeleton = causal_lm_from_config(config, torch.float32)
    plan = {n: TensorSpec(tuple(t.shape), torch.float16) for n, t in skeleton.state_dict(keep_vars=True).items()}
    writer, gen = ShardedWriter(folder, plan, 1 << 62), torch.Generator().manual_seed(0)
    for name, spec in plan.items():
        values = torch.randn(spec.shape, generator=gen) * (0.02 if len(spec.shape) > 1 else 1.0)
        writer.write(name, (values if len(spec.shape) > 1 else values.abs() + 0.5).to(torch.float16))
    writer.finish()


def _largest_layer_fp32_bytes(folder) -> int:
    layers = decoder_layers(open_lazy(folder).model)
    return max(sum(p.numel() * 4 for p in layer.parameters()) for layer in layers)


def _peak_mb(code: str, *args) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KB"))
    return int(line.split()[1]) / 1024, time.perf_counter() - started


@pytest.fixture
def workdir():
    """The synthetic models and their checkpoints (~1.5 GB), deleted after the test."""
    with tempfile.TemporaryDirectory(prefix="awq-rss-") as folder:
        yield Path(folder)


def _measure(workdir: Path, layers: int) -> dict:
    """Peak RSS above a no-weights child, per method and path, for a model of ``layers`` layers."""
    synthetic = workdir / f"synthetic-{layers}"
    synthetic.mkdir()
    _write_synthetic_model(synthetic, layers)
    base_mb, _ = _peak_mb(SKELETON_ONLY, str(synthetic))  # imports and the meta skeleton: no weights
    runs = {}
    for method, extra in RUNS.items():
        for path, flag in (("layer-at-a-time", []), ("in-memory", ["--in-memory"])):
            out = workdir / f"{layers}-{method}-{path}"
            peak, seconds = _peak_mb(PEAK, "quantize", "--model", str(synthetic), "--method", method,
                                     "--out", str(out), *extra, *flag)
            runs[f"{method} {path}"] = {"peak_rss_mb": round(peak, 1), "above_no_weights_mb": round(peak - base_mb, 1),
                                        "seconds": round(seconds, 1)}
        assert _same_files(workdir / f"{layers}-{method}-layer-at-a-time", workdir / f"{layers}-{method}-in-memory")
    disk_mb = sum(p.stat().st_size for p in synthetic.glob("*.safetensors")) / 2**20
    return {"layers": layers, "model_fp16_mb": round(disk_mb, 1), "model_fp32_mb": round(2 * disk_mb, 1),
            "largest_layer_fp32_mb": round(_largest_layer_fp32_bytes(synthetic) / 2**20, 1),
            "no_weights_peak_mb": round(base_mb, 1), "runs": runs}


def test_layer_at_a_time_peak_memory_does_not_grow_with_depth(workdir, record_property):
    small, large = _measure(workdir, SHALLOW), _measure(workdir, LAYERS)
    _publish({"shallow": small, "deep": large}, record_property)
    layer_mb, added = large["largest_layer_fp32_mb"], LAYERS - SHALLOW
    for method in RUNS:
        grew = {path: large["runs"][f"{method} {path}"]["above_no_weights_mb"]
                - small["runs"][f"{method} {path}"]["above_no_weights_mb"] for path in ("layer-at-a-time", "in-memory")}
        assert grew["in-memory"] > 0.8 * added * layer_mb  # the in-memory path holds every float32 layer
        assert grew["layer-at-a-time"] < 0.5 * grew["in-memory"]  # one layer at a time: depth costs ~nothing
        for result in (small, large):
            runs = result["runs"]
            assert runs[f"{method} layer-at-a-time"]["peak_rss_mb"] < runs[f"{method} in-memory"]["peak_rss_mb"]


def _same_files(a, b) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names)


def _publish(report: dict, record_property) -> None:
    print("\n" + json.dumps(report, indent=2))
    for depth, result in report.items():
        for key, value in result["runs"].items():
            record_property(f"{depth} {key}", value)
    if os.environ.get("AWQ_HARNESS_RESULTS_DIR"):
        path = os.path.join(os.environ["AWQ_HARNESS_RESULTS_DIR"], "low_memory_rss.json")
        with open(path, "w") as handle:
            json.dump(report, handle, indent=2)
