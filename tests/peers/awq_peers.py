"""AutoAWQ 0.2.9, llm-compressor 0.14 and our AWQ, run the same way on the same model and tokens.

Each runner quantises ``model_dir`` (w4, one group size, zero point) with the given token
blocks, writes the tool's own checkpoint format (AutoAWQ GEMM, compressed-tensors
pack-quantized, our GEMM), and returns the wall time of the quantise call alone (loading and
saving excluded). Every checkpoint is then read back by the
same decoder (``conformance.dequantized``, after verification) in float32, so perplexities
differ only by what the tools chose.

CPU quirks, each patched only as far as needed to run, and documented where applied:
  * AutoAWQ saves a layer's "original" weights with ``.cpu()``, which on a CPU returns the
    same tensor, so the grid search's in-place scaling corrupts them (see
    tests/peers/test_autoawq_smollm2.py). ``cpu_copies_like_gpu`` makes ``.cpu()`` copy
    inside the scale search, as it does on a GPU; ``fix_aliasing=False`` runs it as shipped.
  * llm-compressor pins cached activations, which needs an accelerator; pinning is skipped.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch

W_BIT = 4


@dataclass
class PeerRun:
    tool: str
    dtype: str
    seconds: float
    checkpoint: Path
    choices: dict | None = None  # per-group scales and clip values, when recorded


@contextlib.contextmanager
def cpu_copies_like_gpu():
    """Inside AutoAWQ's scale search, ``tensor.cpu()`` returns a copy even for CPU tensors."""
    from awq.quantize.quantizer import AwqQuantizer

    original_search, original_cpu = AwqQuantizer._compute_best_scale, torch.Tensor.cpu

    def copying_cpu(tensor, *args, **kwargs):
        moved = original_cpu(tensor, *args, **kwargs)
        return moved.clone() if moved.data_ptr() == tensor.data_ptr() else moved

    def search(self, *args, **kwargs):
        torch.Tensor.cpu = copying_cpu
        try:
            return original_search(self, *args, **kwargs)
        finally:
            torch.Tensor.cpu = original_cpu

    AwqQuantizer._compute_best_scale = search
    try:
        yield
    finally:
        AwqQuantizer._compute_best_scale = original_search


@contextlib.contextmanager
def recording_autoawq_choices(into: dict):
    """Record AutoAWQ's chosen scales per (layer, prev op) and clip values per linear."""
    from awq.quantize.quantizer import AwqQuantizer

    search_scale, search_clip = AwqQuantizer._search_best_scale, AwqQuantizer._search_best_clip
    layer_index = {}

    def scale(self, module, prev_op, layers, *args, **kwargs):
        i = layer_index.setdefault(id(module), len(layer_index))
        prev_name, names, scales = search_scale(self, module, prev_op, layers, *args, **kwargs)
        into.setdefault("scales", {})[(i, prev_name)] = scales.float().clone()
        return prev_name, names, scales

    def clip(self, layer, named_linears, input_feat):
        i = layer_index.setdefault(id(layer), len(layer_index))
        found = search_clip(self, layer, named_linears, input_feat)
        for name, max_val in found:
            into.setdefault("clips", {})[(i, name)] = max_val.float().reshape(max_val.shape[0], -1).clone()
        return found

    AwqQuantizer._search_best_scale, AwqQuantizer._search_best_clip = scale, clip
    try:
        yield
    finally:
        AwqQuantizer._search_best_scale, AwqQuantizer._search_best_clip = search_scale, search_clip


def run_autoawq(model_dir: Path, blocks: torch.Tensor, group: int, dtype: torch.dtype, out: Path,
                fix_aliasing: bool = True, record: bool = False) -> PeerRun:
    """AutoAWQ picks its device itself (``get_best_device``: CUDA when present, else the CPU).
    A MoE model gets one linear per expert (``per_expert_view``) first: AutoAWQ 0.2.9 iterates
    ``experts`` as the transformers 4.51 ModuleList, which transformers 5 fused into 3-D parameters."""
    from awq import AutoAWQForCausalLM

    from awq_harness.awq_ref.model.experts import per_expert_view

    model = AutoAWQForCausalLM.from_pretrained(str(model_dir), torch_dtype=dtype)
    per_expert_view(model.model)
    config = {"zero_point": True, "q_group_size": group, "w_bit": W_BIT, "version": "GEMM"}
    choices: dict = {}
    with contextlib.ExitStack() as stack:
        if fix_aliasing:
            stack.enter_context(cpu_copies_like_gpu())
        if record:
            stack.enter_context(recording_autoawq_choices(choices))
        start = time.perf_counter()
        model.quantize(None, quant_config=config, calib_data=blocks.tolist(), max_calib_samples=len(blocks),
                       max_calib_seq_len=blocks.shape[1])
        seconds = time.perf_counter() - start
    model.save_quantized(str(out))
    return PeerRun("autoawq" if fix_aliasing else "autoawq (as shipped on CPU)", str(dtype).removeprefix("torch."),
                   seconds, out, choices or None)


def run_llmcompressor(model_dir: Path, blocks: torch.Tensor, group: int, dtype: torch.dtype, out: Path,
                      device: str = "cpu") -> PeerRun:
    import datasets
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from transformers import AutoModelForCausalLM

    if device == "cpu":
        IntermediatesCache._pin_intermediate = classmethod(lambda cls, value: None)  # pinning needs an accelerator
    ids = blocks.tolist()
    ds = datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(b) for b in ids]})
    weights = QuantizationArgs(num_bits=W_BIT, type="int", symmetric=False, strategy="group", group_size=group)
    recipe = [AWQModifier(duo_scaling=True),
              QuantizationModifier(ignore=["lm_head"], targets=["Linear"],
                                   config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=weights)})]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device)
    start = time.perf_counter()
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=blocks.shape[1], num_calibration_samples=len(ids))
    seconds = time.perf_counter() - start
    model.save_pretrained(out, save_compressed=True)
    return PeerRun("llm-compressor", str(dtype).removeprefix("torch."), seconds, out)


def run_ours(model_dir: Path, blocks: torch.Tensor, group: int, out: Path, config, device: str = "cpu") -> PeerRun:
    """``quantize --device DEVICE``: the model stays on the CPU, each layer is quantised on ``device``."""
    from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
    from awq_harness.awq_ref.data.models import load_model
    from awq_harness.awq_ref.methods.awq import AwqStep
    from awq_harness.awq_ref.methods.registry import QuantizeRequest
    from awq_harness.awq_ref.pipeline.quantize import run_step
    from awq_harness.awq_ref.primitives.quant import QuantSpec

    spec = QuantSpec(W_BIT, group, True)
    model = load_model(model_dir)
    start = time.perf_counter()
    step = AwqStep(QuantizeRequest(spec, "gemm", awq=config), blocks, mode="real", keep_tensors=True)
    run_step(model, step, device=device)
    result = step.result
    seconds = time.perf_counter() - start
    save_checkpoint(model, out, AwqConfig(spec, "gemm"), source=model_dir)
    name = "ours" if config.loss_blocks is None else f"ours (loss on {config.loss_blocks} blocks)"
    choices = {"scales": {(g.layer, g.prev): g.scales for g in result.groups}, "clips": result.clips}
    return PeerRun(name, config.compute_dtype, seconds, out, choices)


def checkpoint_perplexity(folder: Path, windows: torch.Tensor) -> float:
    """Perplexity of any verified checkpoint, dequantised to float32 by our decoder."""
    from awq_harness.awq_ref.eval.perplexity import perplexity
    from awq_harness.conformance.dequantized import load_dequantized

    model = load_dequantized(folder, torch.float32)
    return perplexity(model, windows.reshape(-1), seqlen=windows.shape[1], batch_size=8).ppl


@dataclass(frozen=True)
class Targets:
    """The targets: ours at least 5x faster than AutoAWQ at its fastest dtype and 2x faster than
    llm-compressor, with perplexity no worse than either by more than 0.5%."""
    speedup: tuple[tuple[str, float], ...] = (("autoawq", 5.0), ("llm-compressor", 2.0))
    ppl_slack: float = 1.005


def comparison(runs: list[PeerRun], ppl: dict[str, float], ours: str) -> list[dict]:
    """One row per run: seconds, how many times slower than ``ours``, perplexity."""
    base = next(r for r in runs if r.tool == ours).seconds
    return [{"tool": r.tool, "dtype": r.dtype, "seconds": round(r.seconds, 2),
             "x_ours": round(r.seconds / base, 2), "ppl": round(ppl[r.tool], 4)} for r in runs]


def missed_targets(rows: list[dict], ours: str, targets: Targets = Targets()) -> list[str]:
    """Every target ``ours`` misses, in words (empty when all are met)."""
    by_tool = {row["tool"]: row for row in rows}
    mine, missed = by_tool[ours], []
    for tool, factor in targets.speedup:
        if by_tool[tool]["x_ours"] < factor:
            missed.append(f"{ours} is {by_tool[tool]['x_ours']:.2f}x faster than {tool}, target {factor}x")
        if mine["ppl"] > by_tool[tool]["ppl"] * targets.ppl_slack:
            missed.append(f"{ours} perplexity {mine['ppl']} > {tool}'s {by_tool[tool]['ppl']} x {targets.ppl_slack}")
    return missed


def table(rows: list[dict]) -> str:
    lines = [f"{'tool':<34} {'dtype':<9} {'seconds':>8} {'x ours':>7} {'ppl':>8}"]
    lines += [f"{r['tool']:<34} {r['dtype']:<9} {r['seconds']:>8.1f} {r['x_ours']:>7.2f} {r['ppl']:>8.3f}"
              for r in rows]
    return "\n".join(lines)
