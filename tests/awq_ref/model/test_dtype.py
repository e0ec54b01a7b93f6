"""A model cast to bfloat16 must compute what the same model loaded in bfloat16 computes: the
float reference is loaded in the evaluation dtype, the rows it judges are cast to it."""
import torch

from awq_harness.awq_ref.data.models import load_model
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.eval.claim_rows import ClaimSettings, RowStore, Variant
from awq_harness.awq_ref.model.dtype import cast_model, computed_buffers


def saved_tiny(tmp_path):
    tiny_model("llama", seed=3).save_pretrained(tmp_path)
    return tmp_path


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_cast_model_equals_the_model_loaded_in_that_dtype_bit_for_bit(tmp_path):
    folder = saved_tiny(tmp_path)
    loaded = load_model(folder, torch.bfloat16)
    cast = cast_model(load_model(folder, torch.float32), torch.bfloat16)
    ids = torch.randint(0, loaded.config.vocab_size, (2, 96), generator=torch.Generator().manual_seed(0))
    assert torch.equal(logits(cast, ids), logits(loaded, ids))
    assert {n: b.dtype for n, b in computed_buffers(cast).items()} == {n: b.dtype for n, b in
                                                                       computed_buffers(loaded).items()}
    assert all(p.dtype == torch.bfloat16 for p in cast.parameters())


def test_module_to_casts_the_rotary_frequencies_and_changes_the_logits(tmp_path):
    """Why ``cast_model`` exists: ``Module.to`` rounds ``inv_freq`` to 8 significant bits."""
    folder = saved_tiny(tmp_path)
    loaded = load_model(folder, torch.bfloat16)
    moved = load_model(folder, torch.float32).to(torch.bfloat16)
    assert computed_buffers(loaded)["model.rotary_emb.inv_freq"].dtype == torch.float32
    assert computed_buffers(moved)["model.rotary_emb.inv_freq"].dtype == torch.bfloat16
    ids = torch.randint(0, loaded.config.vocab_size, (2, 96), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(logits(moved, ids), logits(loaded, ids))


def test_the_float_row_scored_in_bfloat16_sits_on_its_reference(tmp_path):
    """The claims' float row: loaded in float32, cast to bfloat16, scored against the bf16 reference."""
    from awq_harness.awq_ref.data.tiny_lm import tiny_lm_dir

    settings = ClaimSettings("t", calib_samples=2, calib_seqlen=64, windows=2, seqlen=256, curve=(2,),
                             calib_dtype="bfloat16", eval_dtype="bfloat16")
    scores = RowStore(tmp_path / "rows", str(tiny_lm_dir()), settings).get(Variant("fp"))
    assert bool(scores.top1.all())
    assert float(scores.kld.abs().max()) < 1e-3
