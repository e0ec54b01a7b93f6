"""Where a quantised checkpoint's files come from: one staging folder, one tensor plan, one writer.

An ``OutputLayout`` says everything about the folder except the tensors' values: the plan of
every tensor (name -> shape, dtype), config.json, which side files of the source are copied,
and the shard size. ``streamed_checkpoint`` opens the atomic staging folder, writes the config
and side files, and hands back a ``ShardedWriter`` that accepts the planned tensors in any
order; leaving the block renames the folder into place (an interrupted run leaves nothing).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

from awq_ref.checkpoint.atomic import atomic_directory
from awq_ref.checkpoint.awq import DEFAULT_MAX_SHARD_BYTES, AwqConfig, checkpoint_config, copy_side_files, write_json
from awq_ref.checkpoint.gptq import copy_source_files, gptq_config
from awq_ref.checkpoint.plan import awq_plan, gptq_plan
from awq_ref.checkpoint.safetensors_stream import ShardedWriter, TensorSpec
from awq_ref.methods.gptq import GptqConfig

UNSHARDED = 1 << 62  # the GPTQ saver writes one file


@dataclass(frozen=True)
class OutputLayout:
    plan: dict[str, TensorSpec]
    config: dict
    copy_side_files: Callable[[Path | None, Path], None]
    max_shard_bytes: int


def awq_output(model: nn.Module, qcfg: AwqConfig, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> OutputLayout:
    return OutputLayout(awq_plan(model, qcfg), checkpoint_config(model, qcfg, None), copy_side_files, max_shard_bytes)


def gptq_output(model: nn.Module, spec, cfg: GptqConfig, checkpoint_format: str = "gptq") -> OutputLayout:
    return OutputLayout(gptq_plan(model, spec), gptq_config(model, spec, cfg, checkpoint_format),
                        copy_source_files, UNSHARDED)


@contextlib.contextmanager
def streamed_checkpoint(out: Path, layout: OutputLayout, source: Path | None,
                        overwrite: bool = False) -> Iterator[tuple[ShardedWriter, Path]]:
    """A staging folder with config and side files, and a writer for the planned tensors."""
    with atomic_directory(out, replace=overwrite) as staging:
        layout.copy_side_files(source, staging)
        write_json(staging / "config.json", layout.config)
        writer = ShardedWriter(staging, layout.plan, layout.max_shard_bytes)
        try:
            yield writer, staging
        finally:
            writer.close()
        writer.finish()
