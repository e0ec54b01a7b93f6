"""Save and load AWQ checkpoints in the folder layout AutoAWQ and transformers use.

A checkpoint folder holds:
  * ``config.json``: the model config plus ``quantization_config`` = {quant_method: "awq",
    bits, group_size, zero_point, version: "gemm"|"gemv", modules_to_not_convert};
  * ``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` shards with
    ``model.safetensors.index.json`` once the tensors exceed ``max_shard_bytes``;
  * the tokenizer and generation config copied from the source model;
  * ``awq_harness.json``: how it was made (method, spec, per-linear error).
Float tensors are stored in fp16 as AutoAWQ does; tied output embeddings are omitted. The
folder's layout (config keys, side files, shards, index, atomic staging) is the one writer's,
``checkpoint.writer``. Loading never unpickles: safetensors only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from awq_harness.awq_ref import formats
from awq_harness.awq_ref.checkpoint.plan import quantise_skeleton, stored_tensor, tensors_plan
from awq_harness.awq_ref.checkpoint.safetensors_stream import INDEX_FILE, SINGLE_FILE
from awq_harness.awq_ref.checkpoint.writer import DEFAULT_MAX_SHARD_BYTES, model_output, write_checkpoint
from awq_harness.awq_ref.errors import CheckpointError
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.primitives.quant import QuantError, QuantSpec


@dataclass(frozen=True)
class AwqConfig:
    spec: QuantSpec
    version: str = "gemm"
    modules_to_not_convert: list[str] | None = field(default=None)

    def to_json(self) -> dict:
        """The layout's keys from its format module, and the linears left float."""
        return {**formats.layout(self.version).quantization_config(self.spec),
                "modules_to_not_convert": self.modules_to_not_convert}

    @classmethod
    def from_json(cls, q: dict, where: str) -> "AwqConfig":
        if q.get("quant_method") != "awq":
            raise CheckpointError(f"{where}: quant_method is {q.get('quant_method')!r}, expected 'awq'")
        try:
            spec = QuantSpec(int(q.get("bits", q.get("w_bit"))), int(q.get("group_size", q.get("q_group_size"))),
                             bool(q.get("zero_point", True)))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: bad bits/group_size in quantization_config: {err}") from None
        version = str(q.get("version", "gemm")).lower()
        if version not in ("gemm", "gemv"):
            raise CheckpointError(f"{where}: version {version!r} is not supported (gemm, gemv)")
        return cls(spec, version, q.get("modules_to_not_convert"))


# ----------------------------------------------------------------------------- saving

def save_checkpoint(model: nn.Module, out: str | Path, qcfg: AwqConfig, source: str | Path | None = None,
                    meta: dict | None = None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                    overwrite: bool = False, config: dict | None = None) -> Path:
    """Write ``model`` (its linears already AwqLinear) to ``out`` atomically, through ``checkpoint.writer``.

    ``config`` replaces ``model.config.to_dict()`` as the base of config.json (golden
    checkpoints pass a fixed dict so their bytes do not depend on the transformers version).
    """
    state = {name: stored_tensor(t.detach()) for name, t in model.state_dict().items()}
    layout = model_output(model, tensors_plan(state), qcfg.to_json(), config, max_shard_bytes)
    return write_checkpoint(out, layout, state, source, meta, overwrite)


# ----------------------------------------------------------------------------- loading

def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; not a checkpoint folder") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("quantization_config"), dict):
        raise CheckpointError(f"{path}: no quantization_config object; not a quantised checkpoint")
    return cfg


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise CheckpointError(f"{folder / INDEX_FILE}: shard {name!r} points outside the checkpoint folder")
    return path


def tensor_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> file holding it, from the index (sharded) or the single file."""
    index = folder / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{index}: unreadable index ({err})") from None
        return {name: _inside(folder, shard) for name, shard in weight_map.items()}
    single = folder / SINGLE_FILE
    if not single.is_file():
        raise CheckpointError(f"{folder}: no {SINGLE_FILE} and no {INDEX_FILE}")
    with safe_open(single, "pt") as f:
        return {name: single for name in f.keys()}


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    files = tensor_files(folder)
    out = {}
    for path in sorted(set(files.values())):
        try:
            with safe_open(path, "pt") as f:
                out.update({name: f.get_tensor(name) for name in f.keys() if files.get(name) == path})
        except Exception as err:  # safetensors raises several types for a malformed file
            raise CheckpointError(f"{path}: cannot read safetensors ({err})") from None
    missing = sorted(set(files) - set(out))
    if missing:
        raise CheckpointError(f"{folder / INDEX_FILE}: tensors listed but not in their shard: {missing[:5]}")
    return out


def _skeleton(cfg: dict, dtype: torch.dtype) -> nn.Module:
    from transformers import AutoConfig

    from awq_harness.awq_ref.model.compat import causal_lm_from_config

    clean = {k: v for k, v in cfg.items() if k != "quantization_config"}
    config = AutoConfig.for_model(**clean)
    return causal_lm_from_config(config, dtype).eval()


def _check_against(model: nn.Module, tensors: dict[str, torch.Tensor], folder: Path) -> None:
    expected = model.state_dict()
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [k for k in expected if k not in tensors and not (tied and k == "lm_head.weight")]
    unexpected = [k for k in tensors if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{folder}: tensors do not match the config's model: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    for name, tensor in tensors.items():
        want = expected[name]
        if tuple(tensor.shape) != tuple(want.shape):
            raise CheckpointError(f"{folder}: tensor {name} has shape {tuple(tensor.shape)}, "
                                  f"expected {tuple(want.shape)}")
        if tensor.is_floating_point() != want.is_floating_point():
            raise CheckpointError(f"{folder}: tensor {name} has dtype {tensor.dtype}, expected {want.dtype}")


def _keep_stored_scale_dtype(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Scales keep the dtype they were stored in (fp16 from AutoAWQ, bf16 from GPTQModel or
    llm-awq): a bf16 scale below fp16's normal range would lose bits in an fp16 buffer."""
    for name, module in model.named_modules():
        if isinstance(module, AwqLinear):
            module.scales = tensors[f"{name}.scales"]
            module.forget_cache()


def load_checkpoint(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A module tree whose quantised linears run the plain-torch reference; float parts in ``dtype``."""
    folder = Path(folder)
    cfg = read_config(folder)
    qcfg = AwqConfig.from_json(cfg["quantization_config"], str(folder / "config.json"))
    try:
        model = _skeleton(cfg, dtype)
        quantise_skeleton(model, qcfg)
    except (QuantError, ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: cannot build the model: {err}") from None
    tensors = read_tensors(folder)
    _check_against(model, tensors, folder)
    model.load_state_dict(tensors, strict=False)
    _keep_stored_scale_dtype(model, tensors)
    if "lm_head.weight" not in tensors and getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    return model  # load_state_dict copies into the skeleton's dtypes: floats in dtype, scales fp16
