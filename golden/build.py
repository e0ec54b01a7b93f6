"""Build a golden checkpoint from its spec, deterministically."""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_config_dict, tiny_model
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest, get_method
from awq_harness.awq_ref.model.arch import float_readers
from awq_harness.awq_ref.pipeline.ct_run import compressed_tensors_run, method_version
from awq_harness.awq_ref.pipeline.keep import KeepPlan
from awq_harness.awq_ref.pipeline.layer_loop import Loaded, quantize_folder
from awq_harness.awq_ref.pipeline.quantize import method_step, run_step
from awq_harness.awq_ref.primitives import reproducible
from awq_harness.golden.manifest import build_manifest, write_manifest
from awq_harness.golden.specs import GoldenSpec

ROOT = Path(__file__).resolve().parent / "checkpoints"


def golden_dir(name: str) -> Path:
    return ROOT / name


def calibration_ids() -> torch.Tensor:
    """Calibrated goldens calibrate on 8 x 64 token ids from a fixed generator (tiny vocab: 512)."""
    return torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(1234))


def _quantised_model(spec: GoldenSpec, layout: str):
    """The tiny model quantised in place by the spec's registered method (default settings)."""
    model = tiny_model(spec.family, spec.seed)
    run_step(model, method_step(spec.method, QuantizeRequest(spec.quant, layout), calibration_ids()))
    return model


def _save_awq(spec: GoldenSpec, out: Path, layout: str, overwrite: bool) -> None:
    """A MoE family's routers and gates stay float, listed in modules_to_not_convert."""
    config = {**tiny_config_dict(spec.family), "torch_dtype": "float16"}
    model = _quantised_model(spec, layout)
    qcfg = AwqConfig(spec.quant, layout, float_readers(model) or None)
    save_checkpoint(model, out, qcfg, config=config, overwrite=overwrite)


def _save_gptq(spec: GoldenSpec, out: Path, overwrite: bool) -> None:
    """GPTQ (v1 ``checkpoint_format: gptq``, symmetric so every zero fits v1's z - 1)."""
    from awq_harness.awq_ref.checkpoint.gptq import save_gptq_checkpoint
    from awq_harness.awq_ref.methods.gptq import quantization_config, stored_weights

    model, request = tiny_model(spec.family, spec.seed), QuantizeRequest(spec.quant, "gptq")
    step = method_step(spec.method, request, calibration_ids())
    run_step(model, step)  # the GPTQ step keeps every linear's codes for the layout
    config = {**tiny_config_dict(spec.family), "torch_dtype": "float16"}
    save_gptq_checkpoint(model, stored_weights(step.result.weights), out, quantization_config(spec.quant, request.gptq),
                         overwrite=overwrite, base_config=config)


@contextlib.contextmanager
def _numerics(spec: GoldenSpec):
    """Calibrated goldens run forwards and searches whose rounding depends on the CPU's kernels:
    they are built on the pinned path (``awq_ref.primitives.reproducible``) or not at all. Uncalibrated
    methods (RTN) and converted goldens are elementwise on the weights, the same bytes on any CPU, so
    tests may rebuild them in their own (unpinned) process."""
    if not get_method(spec.method).calibrated and not reproducible.is_pinned():
        yield
        return
    with reproducible.pinned(f"golden {spec.name}"):
        yield


def build(spec: GoldenSpec, out: Path, overwrite: bool = False) -> Path:
    """Write the checkpoint and its manifest to ``out`` (atomic, like every checkpoint).
    compressed-tensors goldens are the GEMM golden converted by ``conformance.convert``."""
    with _numerics(spec):
        return _build(spec, out, overwrite)


def _save_ct(spec: GoldenSpec, out: Path, overwrite: bool) -> None:
    """A mixed 4/8-bit or act-order golden, written as ``quantize --format compressed-tensors`` writes
    it (``pipeline.ct_run``), with the version-independent tiny config."""
    method = get_method(spec.method)
    request = QuantizeRequest(spec.quant, method_version(method, "compressed-tensors"),
                              gptq=GptqConfig(act_order=spec.act_order))
    model = tiny_model(spec.family, spec.seed)
    run = compressed_tensors_run(model, method, request, calibration_ids(), KeepPlan([], list(spec.eight_bit), "8bit"))
    config = {**tiny_config_dict(spec.family), "torch_dtype": "float16",
              "quantization_config": run.layout.config["quantization_config"]}
    quantize_folder(Loaded(model), out, run.step, replace(run.layout, config=config), run.float_layers,
                    overwrite=overwrite)


def _build(spec: GoldenSpec, out: Path, overwrite: bool) -> Path:
    if spec.eight_bit or spec.act_order:
        _save_ct(spec, out, overwrite)
    elif spec.layout == "gptq":
        _save_gptq(spec, out, overwrite)
    elif spec.layout == "compressed-tensors":
        from awq_harness.conformance.convert import convert

        with tempfile.TemporaryDirectory() as tmp:
            _save_awq(spec, Path(tmp) / "gemm", "gemm", overwrite=False)
            convert(Path(tmp) / "gemm", out, "compressed-tensors", overwrite=overwrite)
    else:
        _save_awq(spec, out, spec.layout, overwrite)
    write_manifest(out, build_manifest(out, spec.to_json()))
    return out
