"""Write a large synthetic AutoAWQ GEMM checkpoint with real model shapes, fast and without
holding it in memory: tensors are streamed to disk from one reused random block.

Codes are random nibbles, zeros 8, scales 0.01: well-formed for every structural rule;
numerically it is noise, which the streaming benchmark does not care about.
"""
from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np

LLAMA2_7B = {"hidden": 4096, "intermediate": 11008, "layers": 32, "vocab": 32000, "kv_hidden": 4096}
BLOCK = np.random.default_rng(0).integers(0, 2**32, size=16 * 1024 * 1024 // 4, dtype=np.uint32).tobytes()
ITEM = {"I32": 4, "F16": 2}


def _linears(cfg: dict) -> list[tuple[str, int, int]]:
    h, i, kv = cfg["hidden"], cfg["intermediate"], cfg["kv_hidden"]
    shapes = {"self_attn.q_proj": (h, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
              "self_attn.o_proj": (h, h), "mlp.gate_proj": (i, h), "mlp.up_proj": (i, h), "mlp.down_proj": (h, i)}
    return [(f"model.layers.{n}.{m}", out, inp) for n in range(cfg["layers"]) for m, (out, inp) in shapes.items()]


def tensor_specs(cfg: dict, group: int = 128) -> list[tuple[str, str, tuple[int, ...], str]]:
    """(name, dtype, shape, fill) in file order; fill in {random, zeros8, scale, one}."""
    h, v = cfg["hidden"], cfg["vocab"]
    specs = [("model.embed_tokens.weight", "F16", (v, h), "scale")]
    for n in range(cfg["layers"]):
        specs += [(f"model.layers.{n}.input_layernorm.weight", "F16", (h,), "one"),
                  (f"model.layers.{n}.post_attention_layernorm.weight", "F16", (h,), "one")]
    for prefix, out, inp in _linears(cfg):
        specs += [(f"{prefix}.qweight", "I32", (inp, out // 8), "random"),
                  (f"{prefix}.qzeros", "I32", (inp // group, out // 8), "zeros8"),
                  (f"{prefix}.scales", "F16", (inp // group, out), "scale")]
    return specs + [("model.norm.weight", "F16", (h,), "one"), ("lm_head.weight", "F16", (v, h), "scale")]


def _fill_bytes(fill: str, nbytes: int):
    pattern = {"zeros8": b"\x88", "scale": np.float16(0.01).tobytes(), "one": np.float16(1.0).tobytes()}.get(fill)
    unit = BLOCK if pattern is None else pattern * (len(BLOCK) // len(pattern))
    while nbytes > 0:
        yield unit[: min(nbytes, len(unit))]
        nbytes -= len(unit)


def _write_shard(path: Path, specs: list) -> None:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, _ in specs:
        size = math.prod(shape) * ITEM[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for _, dtype, shape, fill in specs:
            for chunk in _fill_bytes(fill, math.prod(shape) * ITEM[dtype]):
                f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


def write_checkpoint(out: Path, cfg: dict = LLAMA2_7B, shard_bytes: int = 2 * 1000**3, group: int = 128) -> Path:
    out.mkdir(parents=True)
    shards, current, size = [], [], 0
    for spec in tensor_specs(cfg, group):
        nbytes = math.prod(spec[2]) * ITEM[spec[1]]
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(spec)
        size += nbytes
    shards.append(current)
    weight_map = {}
    for i, specs in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        _write_shard(out / name, specs)
        weight_map.update({s[0]: name for s in specs})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": cfg["hidden"],
              "intermediate_size": cfg["intermediate"], "num_hidden_layers": cfg["layers"], "num_attention_heads": 32,
              "num_key_value_heads": 32, "vocab_size": cfg["vocab"], "tie_word_embeddings": False,
              "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True,
                                      "version": "gemm", "modules_to_not_convert": None}}
    (out / "config.json").write_text(json.dumps(config))
    return out


def largest_tensor_bytes(cfg: dict = LLAMA2_7B, group: int = 128) -> int:
    return max(math.prod(s[2]) * ITEM[s[1]] for s in tensor_specs(cfg, group))


def evict(folder: Path) -> None:
    """Drop this folder's pages from the page cache (only ours: no global drop_caches)."""
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def sequential_read(folder: Path, buffer: int = 8 * 1024 * 1024) -> int:
    """cat-like: read every file front to back; returns bytes read."""
    buf, total = bytearray(buffer), 0
    for p in sorted(folder.iterdir()):
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return total
