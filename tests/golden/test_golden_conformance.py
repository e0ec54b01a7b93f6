"""Every golden, ours and third-party, passes the verifier; conversions between formats agree."""
import pytest
import torch
from safetensors.torch import load_file

from awq_harness import golden
from awq_harness.awq_ref.checkpoint.awq import load_checkpoint, read_tensors
from awq_harness.awq_ref.formats import compressed_tensors
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.conformance import verify
from awq_harness.conformance.convert import convert
from awq_harness.golden.third_party import EXPECTED, ROOT, checkpoint
from awq_harness.golden.third_party import names as third_party_names

ALL = [golden.path(n) for n in golden.names()] + [checkpoint(n) for n in third_party_names()]


@pytest.mark.parametrize("folder", ALL, ids=lambda p: p.name)
def test_every_golden_conforms(folder):
    report = verify(folder)
    errors = [f.line() for f in report.findings if f.severity == "error"]
    assert report.readable and report.format and errors == []


@pytest.mark.parametrize("name", [n for n in golden.names() if "gemm" in n])
def test_gemm_to_compressed_tensors_and_back_is_lossless(name, tmp_path):
    src = golden.path(name)
    convert(src, tmp_path / "ct", "compressed-tensors")
    convert(tmp_path / "ct", tmp_path / "gemm", "gemm")
    assert verify(tmp_path / "ct").conforms and verify(tmp_path / "gemm").conforms
    before, after = read_tensors(src), read_tensors(tmp_path / "gemm")
    assert sorted(before) == sorted(after)
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    ours = {n: m.dequantized_weight() for n, m in load_checkpoint(src).named_modules() if isinstance(m, AwqLinear)}
    ct = read_tensors(tmp_path / "ct")
    for module, w_hat in ours.items():
        qw = compressed_tensors.unpack({k.removeprefix(module + "."): v for k, v in ct.items()
                                        if k.startswith(module + ".")}, _spec(src))
        assert torch.equal(qw.dequantize(), w_hat), module


def _spec(folder):
    """The quantisation spec of the golden's first quantised linear (any family: q_proj, qkv_proj, ...)."""
    return next(m.spec for m in load_checkpoint(folder).modules() if isinstance(m, AwqLinear))


def test_llmcompressor_golden_decodes_to_compressed_tensors_own_weights():
    folder = ROOT / "llmcompressor-awq-ct"
    expected = load_file(folder / EXPECTED)
    tensors = read_tensors(checkpoint("llmcompressor-awq-ct"))
    from awq_harness.awq_ref.primitives.quant import QuantSpec

    spec = QuantSpec(4, 128, True)
    for key, theirs in expected.items():
        if key == "logits":
            continue
        module = key.removeprefix("dequantized.")
        local = {k.removeprefix(module + "."): v for k, v in tensors.items() if k.startswith(module + ".")}
        mine = compressed_tensors.unpack(local, spec).dequantize(torch.float32)
        assert torch.equal(mine.to(theirs.dtype), theirs), module
