"""Make the third-party golden checkpoints, each inside the tool's own environment.

    .tox/peers/bin/python golden/third_party/make.py autoawq-gemm gptqmodel-awq-gemm
    .tox/peers/bin/python golden/third_party/make.py llmcompressor-awq-ct

Source model: ``awq_ref.data.tiny.tiny_model("llama", seed=3)`` saved with ``save_pretrained``.
Calibration: 8 blocks of 128 token ids drawn from ``torch.Generator().manual_seed(0)``
(the tiny model's vocabulary has 512 entries; the tools take token-id lists).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from awq_harness.awq_ref.data.tiny import save_tiny_model  # noqa: E402
from awq_harness.golden.loaders import autoawq_logits, transformers_logits  # noqa: E402
from awq_harness.golden.third_party import CHECKPOINT, EXPECTED, PROVENANCE, ROOT, TOKEN_IDS  # noqa: E402

GROUP, SEED = 64, 3


def calibration_blocks(n: int = 8, seqlen: int = 128) -> list[list[int]]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(0, 512, (seqlen,), generator=gen).tolist() for _ in range(n)]


def source_model(folder: Path) -> Path:
    return save_tiny_model(folder, "llama", seed=SEED)  # with a tokenizer: GPTQModel insists on one


def autoawq_gemm(src: Path, out: Path) -> dict:
    from awq import AutoAWQForCausalLM
    from awq.utils.packing_utils import dequantize_gemm

    model = AutoAWQForCausalLM.from_pretrained(str(src), torch_dtype=torch.float32)
    config = {"zero_point": True, "q_group_size": GROUP, "w_bit": 4, "version": "GEMM"}
    model.quantize(None, quant_config=config, calib_data=calibration_blocks(), max_calib_samples=8,
                   max_calib_seq_len=128)
    model.save_quantized(str(out))
    deq = _dequantize_all(out, lambda t, p: dequantize_gemm(t[p + "qweight"], t[p + "qzeros"], t[p + "scales"],
                                                            4, GROUP).t())
    return {"tool": "autoawq", "quant_config": config, "dequantized_by": "awq.utils.packing_utils.dequantize_gemm",
            "logits_by": "AutoAWQForCausalLM.from_quantized, naive torch GEMM path (fp16)",
            "tensors": deq, "logits": autoawq_logits(out, TOKEN_IDS)}


def gptqmodel_awq_gemm(src: Path, out: Path) -> dict:
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
    from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

    qc = QuantizeConfig(bits=4, group_size=GROUP, quant_method="awq", format="gemm", sym=False)
    model = GPTQModel.load(str(src), qc, dtype=torch.bfloat16)
    data = [{"input_ids": b, "attention_mask": [1] * len(b)} for b in calibration_blocks()]
    model.quantize(data, batch_size=1, backend=BACKEND.AWQ_TORCH)
    model.save(str(out))
    deq = _dequantize_all(out, lambda t, p: dequantize_gemm(t[p + "qweight"], t[p + "qzeros"], t[p + "scales"],
                                                            4, GROUP).t())
    return {"tool": "gptqmodel", "quant_config": qc.to_dict() if hasattr(qc, "to_dict") else str(qc),
            "dequantized_by": "gptqmodel.quantization.awq.utils.packing_utils.dequantize_gemm",
            "logits_by": "transformers AutoModelForCausalLM (GPTQModel TorchAtenAwqLinear), float16",
            "tensors": deq, "logits": transformers_logits(out, TOKEN_IDS)}


def llmcompressor_awq_ct(src: Path, out: Path) -> dict:
    import datasets
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier
    from llmcompressor.pipelines.cache import IntermediatesCache
    from transformers import AutoModelForCausalLM

    IntermediatesCache._pin_intermediate = classmethod(lambda cls, value: None)  # pins need an accelerator
    blocks = calibration_blocks()
    ds = datasets.Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks]})
    recipe = [AWQModifier(duo_scaling=True),
              QuantizationModifier(ignore=["lm_head"], scheme="W4A16_ASYM", targets=["Linear"])]
    # W4A16_ASYM is group 128; our tiny model's hidden size 128 allows it.
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=128, num_calibration_samples=len(blocks))
    model.save_pretrained(out, save_compressed=True)
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map="cpu")
    with torch.no_grad():
        logits = loaded(torch.tensor([TOKEN_IDS])).logits.float()
    return {"tool": "llmcompressor", "quant_config": {"recipe": "AWQModifier(duo_scaling=True) + "
                                                      "QuantizationModifier(W4A16_ASYM, ignore lm_head)"},
            "dequantized_by": "compressed_tensors PackedQuantizationCompressor.decompress",
            "logits_by": "transformers + compressed-tensors, float32", "tensors": _ct_dequantize_all(out),
            "logits": logits}


def _ct_dequantize_all(folder: Path) -> dict[str, torch.Tensor]:
    from compressed_tensors.compressors.pack_quantized.base import PackedQuantizationCompressor
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from safetensors import safe_open

    group = json.loads((folder / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]
    scheme = QuantizationScheme(targets=group["targets"], weights=QuantizationArgs(**group["weights"]))
    with safe_open(folder / "model.safetensors", "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    prefixes = sorted(k.removesuffix("weight_packed") for k in tensors if k.endswith(".weight_packed"))
    out = {}
    for p in prefixes:
        local = {k.removeprefix(p): v for k, v in tensors.items() if k.startswith(p) and "." not in k[len(p):]}
        out[f"dequantized.{p.rstrip('.')}"] = PackedQuantizationCompressor.decompress(local, scheme)["weight"]
    return out


def _dequantize_all(folder: Path, dequantize) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(folder / "model.safetensors", "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    prefixes = sorted(k.removesuffix("qweight") for k in tensors if k.endswith(".qweight"))
    return {f"dequantized.{p.rstrip('.')}": dequantize(tensors, p).contiguous() for p in prefixes}


def autoround_awq_gemm(src: Path, out: Path) -> dict:
    """AutoRound (PyPI auto-round, not in the peers env: install it --no-deps beside it) asymmetric
    4-bit, exported as ``auto_round`` with AutoAWQ GEMM packing (``packing_format: auto_round:auto_awq``)."""
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM, AutoTokenizer

    blocks = torch.tensor(calibration_blocks())
    loader = torch.utils.data.DataLoader([{"input_ids": b} for b in blocks], batch_size=2)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    config = {"bits": 4, "group_size": GROUP, "sym": False, "iters": 4, "nsamples": 8, "seqlen": 128}
    ar = AutoRound(model, AutoTokenizer.from_pretrained(src), dataset=loader, batch_size=2, device_map="cpu",
                   **config)
    ar.quantize_and_save(str(out), format="auto_round")
    (folder,) = [p for p in out.iterdir() if p.is_dir()] or [out]
    if folder != out:  # AutoRound writes into a sub-folder named after the model
        for f in folder.iterdir():
            f.rename(out / f.name)
        folder.rmdir()
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map="cpu")
    with torch.no_grad():
        logits = loaded(torch.tensor([TOKEN_IDS])).logits.float()
    return {"tool": "auto-round", "quant_config": config, "dequantized_by": "not stored (GEMM packing)",
            "logits_by": "transformers + auto-round (GPTQModel AwqTorchLinear), float16",
            "tensors": {}, "logits": logits}


MAKERS = {"autoawq-gemm": autoawq_gemm, "gptqmodel-awq-gemm": gptqmodel_awq_gemm,
          "llmcompressor-awq-ct": llmcompressor_awq_ct, "autoround-awq-gemm": autoround_awq_gemm}
PACKAGES = ("torch", "transformers", "autoawq", "gptqmodel", "llmcompressor", "compressed-tensors", "auto-round",
            "safetensors")


def _versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def make(name: str) -> Path:
    dest = ROOT / name
    with tempfile.TemporaryDirectory() as tmp:
        src, out = source_model(Path(tmp) / "src"), Path(tmp) / "out"
        result = MAKERS[name](src, out)
        vectors = Path(tmp) / "vectors"
        vectors.mkdir()
        save_file({**result.pop("tensors"), "logits": result.pop("logits").contiguous()}, vectors / EXPECTED)
        result |= {"versions": _versions(), "python": platform.python_version(),
                   "source_model": f"awq_harness.awq_ref.data.tiny.tiny_model('llama', seed={SEED})",
                   "calibration": "8 x 128 token ids, torch.Generator().manual_seed(0), randint(0, 512)",
                   "command": f"python golden/third_party/make.py {name}", "token_ids": TOKEN_IDS}
        (vectors / PROVENANCE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        for extra in ("quant_log.csv",):  # run logs with timings are not test vectors
            (out / extra).unlink(missing_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(vectors, dest)
        shutil.copytree(out, dest / CHECKPOINT)
    return dest


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(MAKERS):
        print(arg, "->", make(arg))
