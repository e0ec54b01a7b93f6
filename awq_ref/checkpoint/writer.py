"""The one writer of every checkpoint folder we make: AWQ, GPTQ, and converted ones.

A folder holds:
  * ``config.json``: the base model's config, cleaned of the keys that name where and with
    what it was made (``_name_or_path``, ``transformers_version``), with ``dtype`` and
    ``torch_dtype`` (transformers 4.x reads the latter) set to the stored float dtype, a flat
    ``rope_theta`` beside 5.x's nested ``rope_parameters`` (4.x reads only the flat key),
    and the format's ``quantization_config``;
  * ``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` shards of at most 5 GB
    (AutoAWQ's ``max_shard_size``; tensors cut by sorted name, a bigger one alone) with
    ``model.safetensors.index.json`` = {metadata: {total_size}, weight_map};
  * the source's side files (tokenizer, chat template, generation config): regular files
    only, never a symlink (it could point anywhere), never weights or pickles, never the
    files this writer makes;
  * ``awq_harness.json``: how it was made, when the caller says.
An output head tied to the input embedding is left out of the files (transformers re-ties it
on load). An ``OutputLayout`` says everything except the tensors' values; ``streamed_checkpoint``
opens the atomic staging folder (``checkpoint.atomic``), writes config and side files, and
hands back the ``ShardedWriter`` (the only code that writes safetensors bytes), which takes
the planned tensors in any order; leaving the block writes the index and renames the folder
into place (an interrupted write leaves nothing at the destination).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.atomic import atomic_directory
from awq_harness.awq_ref.checkpoint.plan import awq_plan, ct_plan, gptq_plan
from awq_harness.awq_ref.checkpoint.safetensors_stream import INDEX_FILE, ShardedWriter, TensorSpec
from awq_harness.awq_ref.primitives.quant import QuantSpec

if TYPE_CHECKING:
    from awq_harness.awq_ref.checkpoint.awq import AwqConfig

META_FILE = "awq_harness.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 1000**3  # AutoAWQ's max_shard_size="5GB"
STORED_DTYPE = "float16"
CLEANED_CONFIG_KEYS = ("_name_or_path", "_model_name_or_path", "transformers_version")
WRITTEN_HERE = {"config.json", INDEX_FILE, META_FILE}
# Weights in any framework's format, and anything a loader might unpickle.
WEIGHT_OR_PICKLE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib",
                             ".npy", ".npz", ".h5", ".msgpack", ".gguf", ".index.json")


def write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def checkpoint_config(base: dict, quantization_config: dict, dtype: str = STORED_DTYPE) -> dict:
    """config.json from the base model's config dict and the format's quantization_config."""
    cfg = {key: value for key, value in base.items() if key not in CLEANED_CONFIG_KEYS}
    cfg["dtype"] = cfg["torch_dtype"] = dtype
    rope = cfg.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope and cfg.get("rope_theta") is None:
        cfg["rope_theta"] = rope["rope_theta"]
    cfg["quantization_config"] = quantization_config
    return cfg


def side_files(source: Path | None) -> list[Path]:
    """The source's files a checkpoint carries along (see the module docstring for the rule)."""
    if source is None:
        return []
    return sorted(Path(entry.path) for entry in os.scandir(source)
                  if entry.is_file(follow_symlinks=False) and entry.name not in WRITTEN_HERE
                  and not entry.name.lower().endswith(WEIGHT_OR_PICKLE_SUFFIXES))


def copy_side_files(source: Path | None, out: Path) -> None:
    for path in side_files(source):
        shutil.copyfile(path, out / path.name, follow_symlinks=False)


def tied_head_keys(tie_word_embeddings: bool, tied_weights_keys: Iterable[str] | None = None) -> set[str]:
    """The output-head tensors left out of the files: exactly when the config ties them to the
    input embedding; their names from the model class (``_tied_weights_keys``: a list in
    transformers 4.x, a dict keyed by them in 5.x), else ``lm_head.weight``."""
    if not tie_word_embeddings:
        return set()
    return set(tied_weights_keys or ["lm_head.weight"])


def model_tied_head_keys(model: nn.Module) -> set[str]:
    return tied_head_keys(bool(getattr(model.config, "tie_word_embeddings", False)),
                          getattr(model, "_tied_weights_keys", None))


def without_keys(mapping: dict, keys: set[str]) -> dict:
    return {name: value for name, value in sorted(mapping.items()) if name not in keys}


@dataclass(frozen=True)
class OutputLayout:
    plan: dict[str, TensorSpec]
    config: dict
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES


def model_output(model: nn.Module, plan: dict[str, TensorSpec], quantization_config: dict,
                 base_config: dict | None = None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> OutputLayout:
    """The layout of a checkpoint of ``model``: its plan without a tied head, its config (or
    ``base_config``: goldens pass a fixed dict so their bytes do not depend on transformers)."""
    base = base_config if base_config is not None else model.config.to_dict()
    return OutputLayout(without_keys(plan, model_tied_head_keys(model)), checkpoint_config(base, quantization_config),
                        max_shard_bytes)


def awq_output(model: nn.Module, qcfg: AwqConfig, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
               base_config: dict | None = None, quantization_config: dict | None = None) -> OutputLayout:
    """An AutoAWQ folder; its ``quantization_config`` is ``qcfg``'s unless the caller hands one in."""
    config = quantization_config if quantization_config is not None else qcfg.to_json()
    return model_output(model, awq_plan(model, qcfg), config, base_config, max_shard_bytes)


def gptq_output(model: nn.Module, spec: QuantSpec, quantization_config: dict,
                max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, base_config: dict | None = None) -> OutputLayout:
    """A GPTQ folder with ``quantization_config`` as it is (``formats.gptq``'s keys, and the method's settings)."""
    return model_output(model, gptq_plan(model, spec), quantization_config, base_config, max_shard_bytes)


def ct_output(model: nn.Module, specs: dict[str, QuantSpec], quantization_config: dict,
              g_idx: frozenset[str] = frozenset(), max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> OutputLayout:
    """A compressed-tensors folder: ``specs`` names each quantised linear's scheme (``plan.ct_plan``)."""
    return model_output(model, ct_plan(model, specs, g_idx), quantization_config, None, max_shard_bytes)


def write_index(folder: Path, writer: ShardedWriter) -> None:
    if len(writer.files) > 1:
        write_json(folder / INDEX_FILE, {"metadata": {"total_size": writer.total_size()},
                                         "weight_map": writer.weight_map()})


@contextlib.contextmanager
def streamed_checkpoint(out: Path, layout: OutputLayout, source: Path | None,
                        overwrite: bool = False) -> Iterator[tuple[ShardedWriter, Path]]:
    """A staging folder with config and side files, and a writer for the planned tensors."""
    with atomic_directory(out, replace=overwrite) as staging:
        copy_side_files(Path(source) if source is not None else None, staging)
        write_json(staging / "config.json", layout.config)
        writer = ShardedWriter(staging, layout.plan, layout.max_shard_bytes)
        try:
            yield writer, staging
        finally:
            writer.close()
        writer.finish()
        write_index(staging, writer)


def write_checkpoint(out: str | Path, layout: OutputLayout, tensors: dict[str, torch.Tensor],
                     source: str | Path | None = None, meta: dict | None = None, overwrite: bool = False) -> Path:
    """The in-memory path: the planned tensors of ``tensors`` at once, through the same streamed
    writer (a tied head is not planned, so not written; a planned tensor missing fails)."""
    with streamed_checkpoint(Path(out), layout, source, overwrite) as (writer, staging):
        writer.write_all({name: t for name, t in tensors.items() if writer.wants(name)})
        if meta is not None:
            write_json(staging / META_FILE, meta)
    return Path(out)
