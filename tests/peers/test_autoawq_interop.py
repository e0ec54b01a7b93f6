"""Interoperability with AutoAWQ 0.2.9 and transformers' AWQ loader (GPTQModel's CPU kernel).

Runs in ``tox -e peers`` (AutoAWQ installed with --no-deps beside transformers 5.23 and
GPTQModel 7.6.0, see .ci/constraints-peers.txt); skipped where those are missing.
"""
import pytest
import torch

pytestmark = pytest.mark.peers
awq = pytest.importorskip("awq", reason="AutoAWQ 0.2.9 is installed only in tox -e peers")

from awq.utils.packing_utils import dequantize_gemm  # noqa: E402

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, load_checkpoint, read_tensors, save_checkpoint  # noqa: E402
from awq_harness.awq_ref.data.tiny import tiny_model  # noqa: E402
from awq_harness.awq_ref.methods.registry import QuantizeRequest  # noqa: E402
from awq_harness.awq_ref.modules.qlinear import AwqLinear  # noqa: E402
from awq_harness.awq_ref.pipeline.quantize import quantize_model  # noqa: E402
from awq_harness.awq_ref.primitives.quant import QuantSpec  # noqa: E402

GROUP = 64


def _autoawq_quantize(root, version):
    from awq import AutoAWQForCausalLM

    model = AutoAWQForCausalLM.from_pretrained(str(root / "src"), torch_dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.randint(0, 512, (128,), generator=gen).tolist() for _ in range(8)]
    config = {"zero_point": True, "q_group_size": GROUP, "w_bit": 4, "version": version}
    model.quantize(None, quant_config=config, calib_data=blocks, max_calib_samples=8, max_calib_seq_len=128)
    model.save_quantized(str(root / version))
    return root / version


@pytest.fixture(scope="module")
def autoawq_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("autoawq")
    tiny_model("llama", seed=3).save_pretrained(root / "src")
    return root


@pytest.fixture(scope="module")
def autoawq_checkpoint(autoawq_root):
    """A GEMM checkpoint written by AutoAWQ itself from a tiny seeded Llama."""
    return _autoawq_quantize(autoawq_root, "GEMM")


def test_autoawq_checkpoint_loads_to_autoawqs_own_dequantised_weights(autoawq_checkpoint):
    ours = load_checkpoint(autoawq_checkpoint)
    tensors = read_tensors(autoawq_checkpoint)
    linears = {name: m for name, m in ours.named_modules() if isinstance(m, AwqLinear)}
    assert len(linears) == 14
    for name, module in linears.items():
        theirs = dequantize_gemm(tensors[f"{name}.qweight"], tensors[f"{name}.qzeros"],
                                 tensors[f"{name}.scales"], 4, GROUP)  # [K, N] fp16
        mine = module.dequantized_weight().t().to(torch.float16)
        assert torch.equal(mine, theirs), name


def test_autoawq_gemv_checkpoint_loads_to_the_same_weights_as_its_gemm(autoawq_root, autoawq_checkpoint):
    """AutoAWQ has no GEMV dequantiser; its search is deterministic, so the same model and
    calibration written as GEMV must load to exactly the weights of the GEMM checkpoint."""
    gemv = load_checkpoint(_autoawq_quantize(autoawq_root, "GEMV"))
    gemm = dict(load_checkpoint(autoawq_checkpoint).named_modules())
    quantised = [(n, m) for n, m in gemv.named_modules() if isinstance(m, AwqLinear)]
    assert len(quantised) == 14 and all(m.version == "gemv" for _, m in quantised)
    for name, module in quantised:
        assert torch.equal(module.dequantized_weight(), gemm[name].dequantized_weight()), name


@pytest.fixture(scope="module")
def our_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ours") / "ck"
    model = tiny_model("llama", seed=5)
    spec = QuantSpec(4, GROUP)
    quantize_model(model, "rtn", QuantizeRequest(spec, "gemm"))
    save_checkpoint(model, folder, AwqConfig(spec, "gemm"))
    return folder


def _hf_logits(folder, ids):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16, device_map="cpu")
    assert sum("Awq" in type(m).__name__ for m in hf.modules()) == 14
    with torch.no_grad():
        return hf(ids).logits.float()


def _with_natural_nibble_order(src, dst):
    """A copy whose qweights use natural nibble order: the classic silent format fault."""
    import shutil

    from safetensors.torch import save_file

    from awq_harness.awq_ref.formats import awq_gemm
    from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last

    shutil.copytree(src, dst)
    tensors = read_tensors(src)
    for name in [n for n in tensors if n.endswith(".qweight")]:
        tensors[name] = pack_last(unpack_last(tensors[name], 4, awq_gemm.ORDER), 4)
    save_file(tensors, dst / "model.safetensors", metadata={"format": "pt"})


def test_transformers_loads_our_checkpoint_to_our_logits(our_checkpoint, tmp_path):
    pytest.importorskip("gptqmodel", reason="transformers needs GPTQModel's kernel for AWQ on CPU")
    ids = torch.arange(1, 65)[None]
    with torch.no_grad():
        exact = load_checkpoint(our_checkpoint)(ids).logits
        bf16 = load_checkpoint(our_checkpoint, torch.bfloat16)(ids).logits.float()
    # GPTQModel's CPU kernel (TorchAtenAwqLinear) computes at about bf16 precision even for fp16
    # inputs, so the bound is twice our own reference's bf16 error, measured on the same input.
    bound = 2 * (bf16 - exact).abs().max() + 1e-3
    assert (_hf_logits(our_checkpoint, ids) - exact).abs().max() <= bound
    # Negative control: the same check fails on a checkpoint with the wrong nibble order.
    _with_natural_nibble_order(our_checkpoint, tmp_path / "broken")
    assert (_hf_logits(tmp_path / "broken", ids) - exact).abs().max() > 5 * bound
