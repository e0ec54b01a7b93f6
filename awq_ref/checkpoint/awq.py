"""Save and load AWQ checkpoints in the folder layout AutoAWQ and transformers use.

A checkpoint folder holds:
  * ``config.json``: the model config plus ``quantization_config`` = {quant_method: "awq",
    bits, group_size, zero_point, version: "gemm"|"gemv", modules_to_not_convert};
  * ``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` shards with
    ``model.safetensors.index.json`` once the tensors exceed ``max_shard_bytes``;
  * the tokenizer and generation config copied from the source model;
  * ``awq_harness.json``: how it was made (method, spec, per-linear error).
Float tensors are stored in fp16 as AutoAWQ does; tied output embeddings are omitted.
Saving is atomic (see ``atomic``). Loading never unpickles: safetensors only.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from awq_ref.checkpoint.atomic import atomic_directory
from awq_ref.checkpoint.safetensors_stream import FILE_METADATA, SINGLE_FILE, index_json, shard_file_names, shard_groups
from awq_ref.errors import CheckpointError
from awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_ref.modules.qlinear import AwqLinear
from awq_ref.modules.swap import excluded, set_submodule
from awq_ref.primitives.quant import QuantError, QuantSpec

INDEX_FILE = "model.safetensors.index.json"
META_FILE = "awq_harness.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 1000**3  # AutoAWQ's max_shard_size="5GB"
NOT_COPIED = {"config.json", INDEX_FILE, META_FILE}


@dataclass(frozen=True)
class AwqConfig:
    spec: QuantSpec
    version: str = "gemm"
    modules_to_not_convert: list[str] | None = field(default=None)

    def to_json(self) -> dict:
        return {"quant_method": "awq", "bits": self.spec.bits, "group_size": self.spec.group_size,
                "zero_point": self.spec.zero_point, "version": self.version.lower(),
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

def stored_tensor(t: torch.Tensor) -> torch.Tensor:
    """What a checkpoint stores for a tensor: floats as fp16 (AutoAWQ), integers as they are."""
    return (t.to(torch.float16) if t.is_floating_point() else t).contiguous()


def tied_output_keys(model: nn.Module) -> list[str]:
    """Output-embedding names left out of the files because they are tied to the input embedding."""
    if not getattr(model.config, "tie_word_embeddings", False):
        return []
    return list(getattr(model, "_tied_weights_keys", None) or ["lm_head.weight"])


def _state_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {k: stored_tensor(v.detach()) for k, v in model.state_dict().items()}
    for key in tied_output_keys(model):
        state.pop(key, None)
    return dict(sorted(state.items()))


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _write_tensors(state: dict[str, torch.Tensor], out: Path, max_bytes: int) -> None:
    shards = shard_groups({name: _nbytes(t) for name, t in state.items()}, max_bytes)
    weight_map = {}
    for names, file_name in zip(shards, shard_file_names(len(shards))):
        save_file({name: state[name] for name in names}, out / file_name, metadata=FILE_METADATA)
        weight_map.update({name: file_name for name in names})
    if len(shards) > 1:
        write_json(out / INDEX_FILE, index_json(weight_map, sum(_nbytes(t) for t in state.values())))


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def checkpoint_config(model: nn.Module, qcfg: AwqConfig, base: dict | None) -> dict:
    cfg = dict(base) if base is not None else model.config.to_dict()
    for key in ("_name_or_path", "_model_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg["dtype"] = cfg["torch_dtype"] = "float16"  # torch_dtype: read by transformers 4.x
    rope = cfg.get("rope_parameters") or {}
    if "rope_theta" in rope:
        cfg.setdefault("rope_theta", rope["rope_theta"])  # 4.x reads the flat key
    cfg["quantization_config"] = qcfg.to_json()
    return cfg


def copy_side_files(source: Path | None, out: Path) -> None:
    """Tokenizer, chat template and generation config: every non-weight file of the source."""
    if source is None:
        return
    for path in sorted(Path(source).iterdir()):
        if path.is_file() and path.name not in NOT_COPIED and path.suffix not in (".safetensors", ".bin", ".pt"):
            shutil.copyfile(path, out / path.name)


def save_checkpoint(model: nn.Module, out: str | Path, qcfg: AwqConfig, source: str | Path | None = None,
                    meta: dict | None = None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                    overwrite: bool = False, config: dict | None = None) -> Path:
    """Write ``model`` (its linears already AwqLinear) to ``out`` atomically.

    ``config`` replaces ``model.config.to_dict()`` as the base of config.json (golden
    checkpoints pass a fixed dict so their bytes do not depend on the transformers version).
    """
    with atomic_directory(out, replace=overwrite) as staging:
        copy_side_files(Path(source) if source else None, staging)
        write_json(staging / "config.json", checkpoint_config(model, qcfg, config))
        _write_tensors(_state_to_save(model), staging, max_shard_bytes)
        if meta is not None:
            write_json(staging / META_FILE, meta)
    return Path(out)


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

    from awq_ref.model.compat import causal_lm_from_config

    clean = {k: v for k, v in cfg.items() if k != "quantization_config"}
    config = AutoConfig.for_model(**clean)
    return causal_lm_from_config(config, dtype).eval()


def quantise_skeleton(model: nn.Module, qcfg: AwqConfig) -> None:
    """Swap the decoder layers' linears (except modules_to_not_convert) for empty AwqLinear modules."""
    prefix = layer_prefix(model)
    for i, layer in enumerate(decoder_layers(model)):
        for name, linear in linears_in(layer).items():
            if excluded(f"{prefix}.{i}.{name}", qcfg.modules_to_not_convert):
                continue
            module = AwqLinear(linear.in_features, linear.out_features, qcfg.spec, qcfg.version,
                               linear.bias is not None)
            set_submodule(layer, name, module)


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
