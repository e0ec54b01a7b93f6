"""Write GPTQ results in the standard GPTQ checkpoint layout (AutoGPTQ / GPTQModel / vLLM).

Folder: ``config.json`` with ``quantization_config`` = {quant_method: "gptq", bits,
group_size, desc_act, sym, static_groups, damp_percent, true_sequential,
checkpoint_format}; ``model.safetensors`` with, per quantised linear, ``qweight``
[K/8, N], ``qzeros`` [K/G, N/8], ``scales`` [K/G, N] fp16, ``g_idx`` [K] int32 (see
``awq_ref.packing.gptq``) and the bias if any; every other float tensor in fp16; tied
output embeddings omitted; the source's tokenizer files; ``awq_harness.json`` metadata.

With act-order (desc_act) and no static groups, a column's group is its rank in the
act-order // G, so ``g_idx`` is not k // G; the codes, zeros and scales are packed the
same way and ``g_idx`` carries the mapping (as AutoGPTQ writes it).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from awq_ref.atomic import atomic_directory
from awq_ref.gptq import GptqConfig, GptqWeight
from awq_ref.packing import gptq as gptq_layout
from awq_ref.quant import QuantizedWeight

SKIPPED_SOURCE_FILES = {"config.json", "model.safetensors.index.json", "awq_harness.json"}


def packed_tensors(qw: GptqWeight, checkpoint_format: str = "gptq") -> dict[str, torch.Tensor]:
    plain = QuantizedWeight(qw.q, qw.scales, qw.zeros, qw.spec)
    tensors = gptq_layout.pack(plain, checkpoint_format=checkpoint_format)
    tensors["g_idx"] = qw.g_idx.to(torch.int32).contiguous()
    return tensors


def gptq_quantization_config(spec, cfg: GptqConfig, checkpoint_format: str) -> dict:
    return {"quant_method": "gptq", "bits": spec.bits, "group_size": spec.group_size,
            "desc_act": cfg.act_order, "sym": not spec.zero_point, "static_groups": cfg.static_groups,
            "damp_percent": cfg.damp, "true_sequential": cfg.true_sequential,
            "checkpoint_format": checkpoint_format}


def gptq_state_dict(model: nn.Module, weights: dict[str, GptqWeight], checkpoint_format: str) -> dict:
    state = {}
    for name, tensor in model.state_dict().items():
        module = name.rsplit(".", 1)[0]
        if module in weights and name.endswith(".weight"):
            continue
        state[name] = (tensor.to(torch.float16) if tensor.is_floating_point() else tensor).contiguous()
    for module, qw in weights.items():
        state.update({f"{module}.{k}": v for k, v in packed_tensors(qw, checkpoint_format).items()})
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    return dict(sorted(state.items()))


def save_gptq_checkpoint(model: nn.Module, weights: dict[str, GptqWeight], out: str | Path, cfg: GptqConfig,
                         source: str | Path | None = None, meta: dict | None = None,
                         checkpoint_format: str = "gptq", overwrite: bool = False,
                         base_config: dict | None = None) -> Path:
    """``weights``: module name (from the model root) -> GptqWeight, as ``gptq(keep_weights=True)`` returns.
    ``base_config`` replaces ``model.config.to_dict()`` (goldens: bytes independent of transformers)."""
    spec = next(iter(weights.values())).spec
    config = dict(base_config) if base_config is not None else model.config.to_dict()
    for key in ("_name_or_path", "_model_name_or_path", "transformers_version"):
        config.pop(key, None)
    config["dtype"] = config["torch_dtype"] = "float16"
    config["quantization_config"] = gptq_quantization_config(spec, cfg, checkpoint_format)
    state = gptq_state_dict(model, weights, checkpoint_format)
    with atomic_directory(out, replace=overwrite) as staging:
        if source is not None:
            for path in sorted(Path(source).iterdir()):
                if path.is_file() and path.name not in SKIPPED_SOURCE_FILES and path.suffix != ".safetensors":
                    shutil.copyfile(path, staging / path.name)
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_file(state, staging / "model.safetensors", metadata={"format": "pt"})
        if meta is not None:
            (staging / "awq_harness.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return Path(out)
