"""A small Mixtral-layout AWQ checkpoint for the MoE rules, made from the tiny Llama GEMM one:
each layer's MLP becomes EXPERTS experts (``block_sparse_moe.experts.<e>.w1|w2|w3``, the packed
gate/up/down tensors, expert e's scales multiplied by 1 + e / 8 so experts differ), a float
router ``block_sparse_moe.gate.weight`` (listed in modules_to_not_convert), and a Mixtral config.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tests.conformance.helpers import edit_config, edit_tensors

EXPERTS = 4
RENAMES = {"gate_proj": "w1", "down_proj": "w2", "up_proj": "w3"}


def _to_experts(tensors: dict) -> None:
    for name in [n for n in tensors if ".mlp." in n]:
        layer, rest = name.split(".mlp.")
        proj, suffix = rest.split(".")
        t = tensors.pop(name)
        for e in range(EXPERTS):
            value = t * (1 + e / 8) if suffix == "scales" else t.clone()
            tensors[f"{layer}.block_sparse_moe.experts.{e}.{RENAMES[proj]}.{suffix}"] = value
        if proj == "gate_proj" and suffix == "qweight":  # GEMM qweight: [in_features, out_features / 8]
            hidden = t.shape[0]
            gen = torch.Generator().manual_seed(len(layer))
            router = 0.02 * torch.randn(EXPERTS, hidden, generator=gen)
            tensors[f"{layer}.block_sparse_moe.gate.weight"] = router.half()


def _mixtral_config(cfg: dict) -> None:
    cfg.update(architectures=["MixtralForCausalLM"], model_type="mixtral", num_local_experts=EXPERTS,
               num_experts_per_tok=2)
    cfg["quantization_config"]["modules_to_not_convert"] = ["block_sparse_moe.gate"]


def make_moe_checkpoint(gemm: Path, out: Path) -> Path:
    shutil.copytree(gemm, out)
    edit_tensors(out, _to_experts, sync_index=True)
    edit_config(out, _mixtral_config)
    return out
