"""On a GPU runner (``pytest -m gpu``): quantising on CUDA agrees with the CPU, and one layer at a
time is what the GPU holds. Skipped with a reason where torch sees no CUDA device."""
from __future__ import annotations

import time

import pytest
import torch

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.methods.awq import AwqSearchConfig, AwqStep
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model, run_step
from awq_harness.awq_ref.primitives.device import resolve_device
from awq_harness.awq_ref.primitives.quant import QuantSpec

pytestmark = pytest.mark.gpu
IDS = torch.randint(0, 512, (8, 64), generator=torch.Generator().manual_seed(5))


def _awq(model, device) -> AwqStep:
    step = AwqStep(QuantizeRequest(QuantSpec(4, 64), "gemm", awq=AwqSearchConfig(compute_dtype="float32")), IDS,
                   keep_tensors=True)
    run_step(model, step, device=device)
    return step


def test_cuda_and_cpu_choose_the_same_awq_grid_points_in_float32():
    cuda = resolve_device("cuda")
    on_cpu = _awq(tiny_model("llama", seed=4, layers=2), torch.device("cpu")).result
    on_gpu = _awq(tiny_model("llama", seed=4, layers=2), cuda).result
    assert [(g.layer, g.prev, g.alpha) for g in on_gpu.groups] == [(g.layer, g.prev, g.alpha) for g in on_cpu.groups]
    for name, clip in on_cpu.clips.items():
        assert torch.allclose(on_gpu.clips[name].cpu(), clip, rtol=1e-5, atol=1e-6), name


@pytest.mark.slow
def test_default_model_perplexity_on_cuda_is_within_half_a_percent_of_the_cpu():
    from awq_harness.awq_ref.data.models import load_tokenizer
    from awq_harness.awq_ref.eval.evaluate import EvalSettings, eval_tokens, evaluate_method

    request = QuantizeRequest(QuantSpec(4, 64), None, 32, 512, awq=AwqSearchConfig(compute_dtype="float32"))
    tokens, rows = eval_tokens("default"), {}
    load_tokenizer("default")
    for device in (torch.device("cpu"), resolve_device("cuda")):
        settings = EvalSettings(windows=8, seqlen=512, dtype=torch.float32, device=device)
        rows[device.type] = evaluate_method("default", "awq", request, tokens, settings).result.ppl
    assert abs(rows["cuda"] / rows["cpu"] - 1) < 0.005, rows


def _llama2_7b_shaped(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                         num_hidden_layers=layers, vocab_size=32000, max_position_embeddings=4096)
    with torch.device(resolve_device("cuda")):
        return LlamaForCausalLM(config).to(torch.float16).eval()


def test_a_7b_shaped_model_on_the_gpu_peaks_at_about_one_layer_plus_activations(capsys):
    """Random weights built on the device (no download); the peak above the resident model is
    the one layer being quantised (float32 master, working copy) and its activations."""
    layers, cuda = 4, resolve_device("cuda")
    model = _llama2_7b_shaped(layers)
    layer_bytes = sum(p.numel() for p in model.model.layers[0].parameters()) * 4  # float32 master
    ids = torch.randint(0, 32000, (8, 512), generator=torch.Generator().manual_seed(0))
    torch.cuda.synchronize(cuda)
    resident = torch.cuda.memory_allocated(cuda)
    torch.cuda.reset_peak_memory_stats(cuda)
    started = time.perf_counter()
    request = QuantizeRequest(QuantSpec(4, 128), "gemm", awq=AwqSearchConfig(loss_blocks=4))
    quantize_model(model, "awq", request, ids)
    torch.cuda.synchronize(cuda)
    seconds, above = time.perf_counter() - started, torch.cuda.max_memory_allocated(cuda) - resident
    activations = ids.numel() * 11008 * 4
    with capsys.disabled():
        print(f"\n7B-shaped AWQ, {layers} layers on {torch.cuda.get_device_name(cuda)}: {seconds:.1f} s "
              f"({seconds / layers:.1f} s/layer), peak {above / 2**30:.2f} GiB above the resident model "
              f"(one float32 layer {layer_bytes / 2**30:.2f} GiB)")
    assert above < 4 * layer_bytes + 4 * activations
