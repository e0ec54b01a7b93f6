"""Speed and perplexity against AutoAWQ 0.2.9 and llm-compressor 0.14.

Model: ``awq_ref.data.tiny_lm`` (4 layers, hidden 256, intermediate 768, byte vocabulary, trained
briefly on the calibration split so its perplexity means something; a random one scores the
vocabulary size whatever the method). Calibration: 128 x 512 tokens from the calibration split
(``awq_ref.data.calibration``), the same token blocks for every tool. w4, group 128, zero point.
Every tool computes in the dtype ``--calib-dtype auto`` picks for the device (a CPU with native
bf16: bfloat16, else float32; CUDA: bfloat16 on sm80+, else float16), the fastest of each there
(fp16 and fp32 are several times slower for both peers on a bf16 CPU). Times are the quantise
call alone, all in this one run, on every core torch may use. ``--device cpu`` runs in tox -e peers;
``--device cuda`` is marked ``gpu`` and needs both peers installed on the GPU runner.
Perplexity: 32 x 512 held-out tokens (Pride and Prejudice), each
tool's own checkpoint decoded in float32 by ``conformance.dequantized``.

"ours" is the AutoAWQ-faithful default (loss over all 128 blocks); "ours (loss on 16 blocks)"
is the speed option ``--loss-blocks 16``, which the targets apply to.

    tox -e peers -- tests/peers/test_peer_speed.py -s      (about 5 minutes on 2 quiet cores)
"""
import os

import pytest
import torch

from tests.peers import awq_peers

pytestmark = pytest.mark.peers
GROUP, BLOCKS, SEQLEN, WINDOWS, FAST_LOSS_BLOCKS = 128, 128, 512, 32, 16
FAST = f"ours (loss on {FAST_LOSS_BLOCKS} blocks)"


@pytest.fixture(scope="module")
def inputs():
    pytest.importorskip("awq", reason="AutoAWQ 0.2.9: tox -e peers")
    pytest.importorskip("llmcompressor", reason="llm-compressor 0.14: tox -e peers")
    from awq_harness.awq_ref.data.calibration import calibration_blocks
    from awq_harness.awq_ref.data.corpus import eval_text
    from awq_harness.awq_ref.data.models import load_tokenizer
    from awq_harness.awq_ref.data.tiny_lm import tiny_lm_dir
    from awq_harness.awq_ref.eval.perplexity import make_windows

    folder = tiny_lm_dir()
    tokenizer = load_tokenizer(folder)
    held_out = torch.tensor(tokenizer(eval_text())["input_ids"])
    return folder, calibration_blocks(tokenizer, BLOCKS, SEQLEN), make_windows(held_out, SEQLEN, WINDOWS)


@pytest.fixture
def all_cores():
    before = torch.get_num_threads()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    yield torch.get_num_threads()
    torch.set_num_threads(before)


def _reference_rows(folder, windows) -> dict[str, float]:
    from awq_harness.awq_ref.data.models import load_model
    from awq_harness.awq_ref.eval.perplexity import perplexity
    from awq_harness.awq_ref.methods.registry import QuantizeRequest
    from awq_harness.awq_ref.pipeline.quantize import quantize_model
    from awq_harness.awq_ref.primitives.quant import QuantSpec

    model = load_model(folder)
    fp = perplexity(model, windows.reshape(-1), seqlen=SEQLEN, batch_size=8).ppl
    quantize_model(model, "rtn", QuantizeRequest(QuantSpec(4, GROUP), None))
    return {"float": fp, "rtn w4 g128": perplexity(model, windows.reshape(-1), seqlen=SEQLEN, batch_size=8).ppl}


def _record(rows, reference, threads, device) -> None:
    from awq_harness.reports.collect import record

    for row in rows:
        record("perplexity", {"model": "tiny-llama-austen", "method": f"awq: {row['tool']}", "bits": 4,
                              "group_size": GROUP, "ppl": row["ppl"]})
        record("benchmarks", {"name": f"awq quantise time ({device}): {row['tool']}", "seconds": row["seconds"],
                              "slower_than_ours_fast": row["x_ours"], "dtype": row["dtype"], "threads": threads,
                              "calibration": f"{BLOCKS}x{SEQLEN}"})
    for name, ppl in reference.items():
        record("perplexity", {"model": "tiny-llama-austen", "method": name, "bits": 16 if name == "float" else 4,
                              "group_size": GROUP, "ppl": ppl})


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_ours_is_faster_than_autoawq_and_llmcompressor_at_equal_perplexity(inputs, all_cores, benchmark, tmp_path,
                                                                           device):
    from awq_harness.awq_ref.methods.awq import AwqSearchConfig
    from awq_harness.awq_ref.primitives.compute_dtype import AUTO, choose

    folder, blocks, windows = inputs
    name = choose(AUTO, device).dtype
    dtype = getattr(torch, name)
    runs = [awq_peers.run_autoawq(folder, blocks, GROUP, dtype, tmp_path / "autoawq"),
            awq_peers.run_llmcompressor(folder, blocks, GROUP, dtype, tmp_path / "llmcompressor", device),
            awq_peers.run_ours(folder, blocks, GROUP, tmp_path / "ours", AwqSearchConfig(compute_dtype=name), device)]
    fast = AwqSearchConfig(compute_dtype=name, loss_blocks=FAST_LOSS_BLOCKS)
    runs.append(benchmark.pedantic(awq_peers.run_ours, args=(folder, blocks, GROUP, tmp_path / "fast", fast, device),
                                   rounds=1, iterations=1))
    ppl = {run.tool: awq_peers.checkpoint_perplexity(run.checkpoint, windows) for run in runs}
    rows = awq_peers.comparison(runs, ppl, FAST)
    reference = _reference_rows(folder, windows)
    benchmark.extra_info.update({"rows": rows, "reference_ppl": reference, "threads": all_cores})
    _record(rows, reference, all_cores, device)
    print(f"\n{awq_peers.table(rows)}\n" + "\n".join(f"{k:<34} ppl {v:.3f}" for k, v in reference.items()))
    assert reference["float"] < ppl[FAST] < reference["rtn w4 g128"], "AWQ must land between float and RTN"
    if device == "cpu":  # the speed targets were set on CPUs; a GPU run records its ratios for a baseline
        assert not awq_peers.missed_targets(rows, FAST), awq_peers.missed_targets(rows, FAST)
