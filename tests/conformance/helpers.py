"""Build small real checkpoints and damage them in controlled ways, for the conformance tests."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from awq_harness.awq_ref.checkpoint.awq import AwqConfig, save_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.formats import awq_gemm
from awq_harness.awq_ref.formats.nibbles import NATURAL_ORDER, pack_last, unpack_last
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec

Q_PROJ = "model.layers.0.self_attn.q_proj"


def make_checkpoint(out: Path, family: str = "llama", seed: int = 0, spec: QuantSpec = QuantSpec(4, 64),
                    max_shard_bytes: int | None = None, reference: Path | None = None, **sizes) -> Path:
    model = tiny_model(family, seed, **sizes)
    if reference is not None:
        model.save_pretrained(reference)
    quantize_model(model, "rtn", QuantizeRequest(spec, "gemm"))
    kwargs = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
    return save_checkpoint(model, out, AwqConfig(spec, "gemm"), **kwargs)


def shard_of(folder: Path, name: str) -> Path:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return folder / json.loads(index.read_text())["weight_map"][name]
    return folder / "model.safetensors"


def edit_tensors(folder: Path, edit, sync_index: bool = False) -> None:
    """Rewrite every shard after ``edit(tensors_of_that_shard)`` changed it in place;
    ``sync_index`` makes the index list exactly what the shards now hold."""
    weight_map = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors = load_file(path)
        edit(tensors)
        save_file(tensors, path, metadata={"format": "pt"})
        weight_map.update({name: path.name for name in tensors})
    index = folder / "model.safetensors.index.json"
    if sync_index and index.exists():
        index.write_text(json.dumps({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}))


def edit_config(folder: Path, edit) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    edit(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def map_packed(tensors: dict, suffix: str, fn, only: str | None = None) -> None:
    """Apply ``fn`` to the unpacked [rows, N] codes of every GEMM ``suffix`` tensor."""
    for name in [n for n in tensors if n.endswith("." + suffix) and (only is None or n.startswith(only))]:
        codes = unpack_last(tensors[name], 4, awq_gemm.ORDER)
        tensors[name] = pack_last(fn(codes), 4, awq_gemm.ORDER)


def repack_natural(tensors: dict, suffix: str, only: str | None = None) -> None:
    """Re-pack a GEMM tensor with the natural nibble order instead of AWQ's interleave."""
    for name in [n for n in tensors if n.endswith("." + suffix) and (only is None or n.startswith(only))]:
        codes = unpack_last(tensors[name], 4, awq_gemm.ORDER)
        tensors[name] = pack_last(codes, 4, NATURAL_ORDER)


def unpack_ct_zero_points(tensors: dict) -> None:
    """Store compressed-tensors zero points the old way: unpacked int8 [N, groups], z - 8."""
    import torch

    for name in [n for n in tensors if n.endswith(".weight_zero_point")]:
        n_out = int(tensors[name.replace("weight_zero_point", "weight_shape")][0])
        z = unpack_last(tensors[name].t().contiguous(), 4)[:, :n_out].t()
        tensors[name] = (z - 8).to(torch.int8).contiguous()


def run_cli(argv: list[str]) -> int:
    """Run our subcommands the way ``awq_ref.cli.main`` does (one-line errors, exit 2),
    without importing the other subcommands, which other issues own."""
    import argparse

    from awq_harness.awq_ref.cli import convert, verify
    from awq_harness.awq_ref.errors import HarnessError

    parser = argparse.ArgumentParser(prog="awq-harness")
    sub = parser.add_subparsers(dest="command", required=True)
    verify.add_parser(sub)
    convert.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except HarnessError as err:
        print(f"awq-harness {args.command}: error: {err}")
        return 2


def save_float_reference(out: Path, family: str = "llama", seed: int = 0) -> Path:
    tiny_model(family, seed).save_pretrained(out)
    return out


def relayout(src: Path, dst: Path, layout_module, quant_config: dict, **pack_kwargs) -> Path:
    """Copy a GEMM checkpoint with every layer re-packed by ``layout_module.pack``."""
    import shutil

    from awq_harness.awq_ref.primitives.quant import QuantSpec

    shutil.copytree(src, dst)
    spec = QuantSpec(4, quant_config.get("group_size", 64))

    def edit(tensors):
        for prefix in [n[: -len(".qweight")] for n in list(tensors) if n.endswith(".qweight")]:
            parts = {s: tensors.pop(f"{prefix}.{s}") for s in ("qweight", "qzeros", "scales")}
            qw = awq_gemm.unpack(parts, spec)
            for s, t in layout_module.pack(qw, parts["scales"].dtype, **pack_kwargs).items():
                tensors[f"{prefix}.{s}"] = t

    edit_tensors(dst, edit, sync_index=True)
    edit_config(dst, lambda cfg: cfg.__setitem__("quantization_config", quant_config))
    return dst


def gptq_config(group_size: int = 64, v2: bool = False) -> dict:
    return {"quant_method": "gptq", "bits": 4, "group_size": group_size, "sym": False, "desc_act": False,
            "checkpoint_format": "gptq_v2" if v2 else "gptq", "damp_percent": 0.05, "true_sequential": True}


def read_raw_header(path: Path) -> tuple[dict, bytes]:
    import struct

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8: 8 + n]), raw[8 + n:]


def write_raw(path: Path, header: dict | bytes, data: bytes, length: int | None = None) -> None:
    import struct

    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)


def edit_header(path: Path, edit) -> None:
    header, data = read_raw_header(path)
    edit(header)
    write_raw(path, header, data)


def untie_head(folder: Path) -> None:
    """Store the output head as its own tensor (a copy of the embedding: the same logits) and say
    tie_word_embeddings false, as an untied checkpoint of a tied family would."""
    path = folder / "model.safetensors"
    tensors = load_file(path)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, path, metadata={"format": "pt"})
    edit_config(folder, lambda cfg: cfg.__setitem__("tie_word_embeddings", False))
