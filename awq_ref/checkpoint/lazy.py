"""Open a model folder without loading its weights; bring one decoder layer into memory at a time.

The skeleton's parameters (and the quantised layers' packed buffers) live on the ``meta``
device; ``materialize(prefix)`` reads just the tensors under ``prefix`` from the
memory-mapped safetensors files and ``release(prefix)`` returns them to ``meta``. Small
buffers that models compute at construction (rotary frequencies) stay real. Memory is then
about one layer per open model, so a functional check scales to models larger than RAM.

A folder whose files are sparse local copies of a remote checkpoint (the verifier's remote
reading) registers a fetch function with ``fetching(folder, fetch)``: while it is registered,
a model opened from that folder calls ``fetch(file, tensor names)`` before it reads those
tensors, so their bytes are fetched one layer at a time, not the whole checkpoint up front.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from accelerate import init_empty_weights
from accelerate.utils import set_module_tensor_to_device
from safetensors import safe_open
from torch import nn

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, read_config, tensor_files
from awq_harness.awq_ref.checkpoint.plan import quantise_skeleton
from awq_harness.awq_ref.errors import CheckpointError
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix
from awq_harness.awq_ref.model.compat import causal_lm_from_config


@dataclass
class LazyModel:
    folder: Path
    model: nn.Module
    files: dict[str, Path]  # tensor name -> safetensors file
    dtype: torch.dtype
    fetch: Callable[[Path, list[str]], None] | None = None  # see fetching()

    @property
    def layers(self) -> nn.ModuleList:
        return decoder_layers(self.model)

    def layer_name(self, i: int) -> str:
        return f"{layer_prefix(self.model)}.{i}."

    def materialize_outside_layers(self) -> None:
        """Embeddings, final norm, output head: everything but the decoder layers."""
        self.materialize(exclude=f"{layer_prefix(self.model)}.")

    def _names_under(self, prefix: str) -> list[str]:
        return [n for n in self.model.state_dict(keep_vars=True) if n.startswith(prefix)]

    def materialize(self, prefix: str = "", exclude: str | None = None) -> None:
        """Read every tensor whose name starts with ``prefix`` (except those under ``exclude``)."""
        self.load([n for n in self._names_under(prefix) if not (exclude and n.startswith(exclude))])

    def load(self, names: list[str]) -> None:
        """Read exactly these tensors (names as in the model's state dict)."""
        by_file: dict[Path, list[str]] = {}
        for name in names:
            source = self._source_name(name)
            by_file.setdefault(self.files[source], []).append(name)
        for path, group in sorted(by_file.items()):
            if self.fetch is not None:
                self.fetch(path, sorted({self._source_name(n) for n in group}))
            with safe_open(path, "pt") as f:
                for name in group:
                    self._set(name, f.get_tensor(self._source_name(name)))

    def release(self, prefix: str) -> None:
        self.unload(self._names_under(prefix))

    def unload(self, names: list[str]) -> None:
        for name in names:
            set_module_tensor_to_device(self.model, name, "meta")

    def _source_name(self, name: str) -> str:
        if name in self.files:
            return name
        tied = getattr(self.model.config, "tie_word_embeddings", False)
        if tied and name == "lm_head.weight":
            return self.model.get_input_embeddings_name() if hasattr(self.model, "get_input_embeddings_name") \
                else _input_embedding_name(self.model)
        raise CheckpointError(f"{self.folder}: tensor {name} is not in the checkpoint")

    def _set(self, name: str, tensor: torch.Tensor) -> None:
        current = self.model.get_parameter(name) if _is_parameter(self.model, name) else self.model.get_buffer(name)
        dtype = self.dtype if current.is_floating_point() and not name.endswith(".scales") else tensor.dtype
        set_module_tensor_to_device(self.model, name, "cpu", value=tensor.to(dtype))


def _is_parameter(model: nn.Module, name: str) -> bool:
    return name in dict(model.named_parameters())


def _input_embedding_name(model: nn.Module) -> str:
    emb = model.get_input_embeddings()
    return next(f"{n}.weight" for n, m in model.named_modules() if m is emb)


_FETCHERS: dict[Path, Callable[[Path, list[str]], None]] = {}


@contextmanager
def fetching(folder: str | Path, fetch: Callable[[Path, list[str]], None]):
    """While active, models opened from ``folder`` call ``fetch(file, names)`` before reading tensors."""
    key = Path(folder).resolve()
    _FETCHERS[key] = fetch
    try:
        yield
    finally:
        _FETCHERS.pop(key, None)


def open_lazy(folder: str | Path, dtype: torch.dtype = torch.float32) -> LazyModel:
    """A float model folder or an AWQ checkpoint, weights left on disk."""
    from transformers import AutoConfig

    folder = Path(folder)
    cfg = _config(folder)
    qcfg = cfg.pop("quantization_config", None)
    with init_empty_weights(include_buffers=False):
        model = causal_lm_from_config(AutoConfig.for_model(**cfg), dtype).eval()
    if qcfg is not None:
        with init_empty_weights(include_buffers=True):
            quantise_skeleton(model, AwqConfig.from_json(qcfg, str(folder / "config.json")))
    return LazyModel(folder, model, tensor_files(folder), dtype, _FETCHERS.get(folder.resolve()) if _FETCHERS else None)


def _config(folder: Path) -> dict:
    import json

    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; not a model folder")
    cfg = json.loads(path.read_text())
    if "quantization_config" in cfg:
        read_config(folder)  # validates the quantisation config's shape
    return cfg
