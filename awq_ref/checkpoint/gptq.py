"""Write GPTQ results in the standard GPTQ checkpoint layout (AutoGPTQ / GPTQModel / vLLM).

Folder (laid out by ``checkpoint.writer``, like every checkpoint): ``config.json`` with the
``quantization_config`` the caller hands in (the layout's keys from ``formats.gptq.quantization_config``,
the method's search settings beside them; its ``checkpoint_format`` says how the zeros are
stored); safetensors files (5 GB
shards) with, per quantised linear, ``qweight`` [K/8, N], ``qzeros`` [K/G, N/8], ``scales``
[K/G, N] fp16, ``g_idx`` [K] int32 (see ``awq_ref.formats.gptq``) and the bias if any;
every other float tensor in fp16; tied output embeddings omitted; the source's tokenizer
files; ``awq_harness.json`` metadata.

With act-order (desc_act) and no static groups, a column's group is its rank in the
act-order // G, so ``g_idx`` is not k // G; the codes, zeros and scales are packed the
same way and ``g_idx`` carries the mapping (as AutoGPTQ writes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.plan import stored_tensor, tensors_plan
from awq_harness.awq_ref.checkpoint.writer import DEFAULT_MAX_SHARD_BYTES, model_output, write_checkpoint
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.primitives.quant import QuantizedWeight


@dataclass(frozen=True)
class GroupIndexedWeight:
    """Codes, scales and zeros of one linear, and the group of each input column (``g_idx``: k // G
    unless act-order permuted the groups)."""

    weight: QuantizedWeight
    g_idx: torch.Tensor


def packed_tensors(qw: GroupIndexedWeight, checkpoint_format: str = "gptq") -> dict[str, torch.Tensor]:
    tensors = gptq_layout.pack(qw.weight, checkpoint_format=checkpoint_format)
    tensors["g_idx"] = qw.g_idx.to(torch.int32).contiguous()
    return tensors


def gptq_tensors(state: dict[str, torch.Tensor], weights: dict[str, GroupIndexedWeight],
                 checkpoint_format: str) -> dict[str, torch.Tensor]:
    """What the files hold for ``state`` (names from the model root): each quantised module's
    ``.weight`` replaced by its packed tensors, every other float tensor in fp16."""
    out = {}
    for name, tensor in state.items():
        module = name.rsplit(".", 1)[0]
        if module in weights and name.endswith(".weight"):
            continue
        out[name] = stored_tensor(tensor)
    for module, qw in weights.items():
        out.update({f"{module}.{k}": v for k, v in packed_tensors(qw, checkpoint_format).items()})
    return out


def save_gptq_checkpoint(model: nn.Module, weights: dict[str, GroupIndexedWeight], out: str | Path,
                         quantization_config: dict, source: str | Path | None = None, meta: dict | None = None,
                         overwrite: bool = False, base_config: dict | None = None,
                         max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """``weights``: module name (from the model root) -> its codes and g_idx; ``quantization_config``:
    written as it is, its ``checkpoint_format`` also packs the zeros. ``base_config`` replaces
    ``model.config.to_dict()`` (goldens: bytes independent of transformers)."""
    tensors = gptq_tensors(model.state_dict(), weights, quantization_config["checkpoint_format"])
    layout = model_output(model, tensors_plan(tensors), quantization_config, base_config, max_shard_bytes)
    return write_checkpoint(out, layout, tensors, source, meta, overwrite)
