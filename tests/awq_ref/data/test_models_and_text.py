"""Models and text that need no hub: tiny seeded families, the default model, the corpus."""
import multiprocessing
import os

import pytest
import torch

from awq_harness.awq_ref.data import corpus, models
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.errors import ModelError
from awq_harness.awq_ref.model.arch import decoder_layers


@pytest.mark.parametrize("family", ["llama", "qwen2", "opt"])
def test_tiny_models_are_seeded(family):
    a, b, c = tiny_model(family, 1), tiny_model(family, 1), tiny_model(family, 2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_tiny_families_have_their_defining_features():
    llama, qwen, opt = (tiny_model(f) for f in ("llama", "qwen2", "opt"))
    attn = decoder_layers(llama)[0].self_attn
    assert attn.k_proj.out_features < attn.q_proj.out_features  # grouped-query attention
    qattn = decoder_layers(qwen)[0].self_attn
    assert all(getattr(qattn, n).bias is not None for n in ("q_proj", "k_proj", "v_proj"))
    assert qattn.o_proj.bias is None
    olayer = decoder_layers(opt)[0]
    assert isinstance(olayer.self_attn_layer_norm, torch.nn.LayerNorm) and olayer.self_attn_layer_norm.bias is not None
    assert hasattr(olayer, "fc1") and hasattr(olayer, "fc2")


def test_unknown_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        models.resolve_model_dir(str(tmp_path))


def _build_with_fake_builder(cache: str, counter: str) -> None:
    os.environ["AWQ_HARNESS_CACHE"] = cache

    def fake_build(out):
        with open(counter, "a") as f:
            f.write("built\n")
        (out / "config.json").write_text("{}")

    models._build_default_model = fake_build
    models.default_model_dir()


def test_parallel_builders_build_the_default_model_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    counter = tmp_path / "builds.txt"
    procs = [ctx.Process(target=_build_with_fake_builder, args=(str(tmp_path / "cache"), str(counter)))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert counter.read_text() == "built\n"
    built = tmp_path / "cache" / "models" / models.CACHE_NAME
    assert (built / "config.json").read_text() == "{}"
    assert not [p for p in built.parent.iterdir() if ".partial-" in p.name]


def test_default_model_answers_like_smollm2():
    model, tok = models.load_model("default"), models.load_tokenizer("default")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])


def test_corpus_splits_are_disjoint_and_large_enough():
    calib, held_out = corpus.calibration_texts(), corpus.eval_text()
    assert len(held_out) > 600_000 and sum(map(len, calib)) > 3_000_000
    assert set(corpus.CALIB_BOOKS).isdisjoint(corpus.EVAL_BOOKS)
    held_out_lines = {line for line in held_out.splitlines() if len(line) > 60}
    calib_text = " ".join(calib)
    assert not any(line in calib_text for line in list(held_out_lines)[:500])


def test_corpus_files_match_pinned_digests():
    sums = (corpus.corpus_dir() / "SHA256SUMS").read_text().split("\n")
    recorded = {line.split()[1].removesuffix(".txt"): line.split()[0] for line in sums if line}
    assert recorded == corpus.SHA256
