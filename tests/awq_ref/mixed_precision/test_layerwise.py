"""Functional check: layer-wise error, end-to-end perplexity, sensitivity and plans (tiny models)."""
import math

import pytest
import torch

from awq_harness.awq_ref.checkpoint import lazy
from awq_harness.awq_ref.checkpoint.awq import AwqConfig, load_checkpoint, save_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.eval.perplexity import perplexity
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.mixed_precision.layerwise import compare_layerwise
from awq_harness.awq_ref.mixed_precision.plan import plan_keep_layers
from awq_harness.awq_ref.mixed_precision.sensitivity import layer_sensitivity
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec, pseudo_quantize

WINDOWS = torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=["llama", "qwen2", "opt"])
def pair(request, tmp_path_factory):
    """A float tiny model folder and its RTN w4 g32 checkpoint (4 layers)."""
    root = tmp_path_factory.mktemp(request.param)
    model = tiny_model(request.param, seed=11, layers=4)
    for p in model.parameters():
        p.data = p.data.half().float()  # what the float folder stores
    model.save_pretrained(root / "fp")
    quantize_model(model, "rtn", QuantizeRequest(QuantSpec(4, 32), "gemm"))
    save_checkpoint(model, root / "q", AwqConfig(QuantSpec(4, 32), "gemm"))
    return root / "fp", root / "q"


def test_layerwise_perplexities_equal_the_full_model_evaluator(pair):
    fp, q = pair
    report = compare_layerwise(str(fp), str(q), WINDOWS)
    tokens = WINDOWS.reshape(-1)
    from awq_harness.awq_ref.data.models import load_model

    assert math.isclose(report.ppl_reference, perplexity(load_model(fp), tokens, 64).ppl, rel_tol=1e-5)
    assert math.isclose(report.ppl_quantized, perplexity(load_checkpoint(q), tokens, 64).ppl, rel_tol=1e-5)
    first = report.layers[0]
    assert first.isolated_rel_error == first.accumulated_rel_error > 0
    assert all(0 < e.isolated_rel_error < 0.5 and e.isolated_sqnr_db > 6 for e in report.layers)


def test_a_model_against_itself_has_no_error(pair):
    fp, _ = pair
    report = compare_layerwise(str(fp), str(fp), WINDOWS)
    assert all(e.accumulated_rel_error == 0 and e.isolated_sqnr_db == math.inf for e in report.layers)
    assert report.ppl_ratio == 1.0


def test_only_one_layer_of_each_model_is_in_memory(pair, monkeypatch):
    fp, q = pair
    live, peak = set(), []
    real_materialize, real_release = lazy.LazyModel.materialize, lazy.LazyModel.release

    def materialize(self, prefix="", exclude=None):
        real_materialize(self, prefix, exclude)
        if prefix:
            live.add((id(self), prefix))
            peak.append(len(live))

    def release(self, prefix):
        real_release(self, prefix)
        live.discard((id(self), prefix))

    monkeypatch.setattr(lazy.LazyModel, "materialize", materialize)
    monkeypatch.setattr(lazy.LazyModel, "release", release)
    compare_layerwise(str(fp), str(q), WINDOWS)
    assert max(peak) == 2 and not live  # one layer of each model at a time, all released


def test_sensitivity_ranks_the_damaged_layer_first(pair):
    fp, _ = pair
    from awq_harness.awq_ref.data.models import load_model

    reference, damaged = load_model(fp), load_model(fp)
    for p in decoder_layers(damaged)[2].parameters():
        if p.dim() == 2:  # layer 2 alone at 2 bits per channel: far worse than any 4-bit layer
            p.data = pseudo_quantize(p.data, QuantSpec(2, -1))
    ranking = layer_sensitivity(reference, damaged, WINDOWS)
    assert ranking[0].layer == 2 and ranking[0].delta_nll > 0
    assert all(s.delta_nll == 0 for s in ranking[1:])  # the other layers are identical


def _sampled_from(model, n=4, length=128):
    """Token windows sampled from ``model`` itself: in expectation no other model has lower
    NLL on them (Gibbs' inequality), so damage shows up as a perplexity increase."""
    torch.manual_seed(0)
    start = torch.randint(0, 512, (n, 1), generator=torch.Generator().manual_seed(1))
    return model.generate(start, do_sample=True, max_new_tokens=length - 1, min_new_tokens=length - 1,
                          top_k=0, pad_token_id=0)


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt"])
def test_plan_keeps_exactly_the_damaged_layers(family):
    reference, damaged = (tiny_model(family, seed=11, layers=4) for _ in range(2))
    for model in (reference, damaged):  # a confident model, so that sampled text has structure
        model.get_output_embeddings().weight.data *= 20
    for layer in (1, 3):
        for p in decoder_layers(damaged)[layer].parameters():
            if p.dim() == 2:
                p.data = pseudo_quantize(p.data, QuantSpec(2, -1))
    ids = _sampled_from(reference)
    ranking = layer_sensitivity(reference, damaged, ids)
    assert {s.layer for s in ranking[:2]} == {1, 3}
    full = plan_keep_layers(reference, damaged, ranking, ids, target=1.0)
    assert full.keep_layers == [1, 3] and full.ppl_plan == full.ppl_reference and full.recovered == 1.0
    half = plan_keep_layers(reference, damaged, ranking, ids, target=0.5)
    assert half.recovered >= 0.5 and set(half.keep_layers) <= {1, 3}
    assert full.ppl_reference < half.ppl_plan <= full.ppl_quantized or half.keep_layers == [1, 3]


def test_plan_size_cost_counts_fp16_weights_against_packed_ones(pair):
    fp, q = pair
    from awq_harness.awq_ref.data.models import load_model

    reference, quantized = load_model(fp), load_checkpoint(q)
    ranking = layer_sensitivity(reference, quantized, WINDOWS)
    plan = plan_keep_layers(reference, quantized, ranking, WINDOWS, target=1.0)
    linears = [m for m in decoder_layers(quantized)[plan.keep_layers[0]].modules() if hasattr(m, "qweight")]
    fp16 = sum(2 * m.in_features * m.out_features for m in linears)
    packed = sum(t.numel() * t.element_size() for m in linears for t in (m.qweight, m.qzeros, m.scales))
    assert plan.extra_bytes >= fp16 - packed > 0
