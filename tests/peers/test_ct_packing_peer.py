"""Our compressed-tensors packing is compressed-tensors' own (``pack_to_int32``) at 4 and 8 bits,
for codes along K and zero points along N (``packed_dim=0``)."""
import pytest
import torch

from awq_harness.awq_ref.formats import compressed_tensors as ct
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize

pytestmark = pytest.mark.peers
helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")


@pytest.mark.parametrize("bits", [4, 8])
def test_packing_equals_compressed_tensors(bits):
    spec = QuantSpec(bits, 32, True)
    qw = quantize(torch.randn(40, 96, generator=torch.Generator().manual_seed(bits)), spec)
    ours = ct.pack(qw)
    offset = 1 << (bits - 1)
    signed_q, signed_z = (qw.q - offset).to(torch.int8), (qw.zeros - offset).to(torch.int8)
    assert torch.equal(ours["weight_packed"], helpers.pack_to_int32(signed_q, bits))
    assert torch.equal(ours["weight_zero_point"], helpers.pack_to_int32(signed_z, bits, packed_dim=0))
