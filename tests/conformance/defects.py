"""The seeded-defect table: each entry damages a good checkpoint in one way and names the
rule that must catch it (test_defects.py). Base kinds come from conftest.built. Every rule
in conformance.rules has at least one entry here or in reference_defects.py, and
test_defects.py fails, naming the rule, when one has none."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from awq_harness.awq_ref.formats import awq_gemm
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from tests.conformance.helpers import (
    Q_PROJ,
    edit_config,
    edit_header,
    edit_tensors,
    map_packed,
    read_raw_header,
    repack_natural,
    shard_of,
    unpack_ct_zero_points,
    write_raw,
)


@dataclass(frozen=True)
class Defect:
    """``where``: text the finding must carry in its file, tensor or message (whole-model
    rules have neither, so it is the part of the model or the threshold the message names);
    None: the finding must name a file or a tensor. ``reference``: verify with --reference
    against a copy of the float reference that this function may damage. ``fault``: a
    verifier function (dotted path) replaced by one that raises. ``exit_code`` None: not checked."""

    name: str
    rule: str
    damage: Callable[[Path], None]
    base: str = "gemm"
    severity: str = "error"
    exit_code: int | None = 1
    where: str | None = None
    reference: Callable[[Path], None] | None = None
    fault: str | None = None


def intact(folder: Path) -> None:
    """No damage: the base itself shows what the rule reports."""


def _qcfg(key, value):
    return lambda d: edit_config(d, lambda c: c["quantization_config"].__setitem__(key, value))


def _drop(name):
    return lambda d: edit_tensors(d, lambda t: t.pop(name, None))


def _set(name, fn):
    def edit(t):
        if name in t:
            t[name] = fn(t[name])

    return lambda d: edit_tensors(d, edit)


def _nan_first(t):
    t = t.clone()
    t.view(-1)[0] = float("nan")
    return t


def _neg_first(t):
    t = t.clone()
    t.view(-1)[3] = -t.view(-1)[3]
    return t


def _bf16_huge(t):
    t = t.to(torch.bfloat16)
    t.view(-1)[0] = 1e5
    return t


def _quantise_lm_head(d: Path):
    def edit(t):
        if "lm_head.weight" in t:
            qw = quantize(t.pop("lm_head.weight").float(), QuantSpec(4, 64), torch.float16)
            t.update({f"lm_head.{k}": v for k, v in awq_gemm.pack(qw).items()})

    edit_tensors(d, edit, sync_index=True)


def _move_to_other_shard(d: Path, duplicate: bool):
    shards = sorted(d.glob("*.safetensors"))
    name = "model.embed_tokens.weight"
    src = shard_of(d, name)
    other = next(s for s in shards if s != src)
    from safetensors.torch import load_file, save_file

    t = load_file(src)
    o = load_file(other)
    o[name if duplicate else "model.extra.weight"] = t[name]
    save_file(o, other, metadata={"format": "pt"})


def _index(edit):
    def apply(d: Path):
        p = d / "model.safetensors.index.json"
        idx = json.loads(p.read_text())
        edit(idx["weight_map"])
        p.write_text(json.dumps(idx))

    return apply


def _first_shard(fn):
    return lambda d: fn(sorted(d.glob("*.safetensors"))[0])


def _truncate(p: Path):
    os.truncate(p, p.stat().st_size - 1000)


def _header_length(p: Path):
    header, data = read_raw_header(p)
    write_raw(p, header, data, length=1 << 40)


def _overlap(h: dict):
    names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])
    a, b = h[names[0]], h[names[1]]
    size = b["data_offsets"][1] - b["data_offsets"][0]
    start = a["data_offsets"][0]
    if a["dtype"] == b["dtype"] and size <= a["data_offsets"][1] - start:
        b["data_offsets"] = [start, start + size]
    else:
        b["data_offsets"] = [b["data_offsets"][0] - 2, b["data_offsets"][1] - 2]


def _grow_shape(h: dict):
    name = next(k for k in h if k != "__metadata__")
    h[name]["shape"] = [h[name]["shape"][0] + 1] + h[name]["shape"][1:]


def _bad_dtype(h: dict):
    h[next(k for k in h if k != "__metadata__")]["dtype"] = "Q4_K"


def _escape_symlink(d: Path):
    (d / "tokenizer.json").symlink_to("/etc/hostname")


def _escape_index(d: Path):
    _index(lambda wm: wm.__setitem__("model.norm.weight", "../outside.safetensors"))(d)


def _pickle_only(d: Path):
    from safetensors.torch import load_file

    state = {}
    for p in d.glob("*.safetensors"):
        state.update(load_file(p))
        p.unlink()
    (d / "model.safetensors.index.json").unlink(missing_ok=True)
    torch.save(state, d / "pytorch_model.bin")


def _ct_weight_shape(d: Path):
    _set(f"{Q_PROJ}.weight_shape", lambda t: torch.tensor([128, 120], dtype=torch.int64))(d)


def _ct_weights(**fields):
    """Set fields of the compressed-tensors weights scheme (config_groups.group_0.weights)."""
    return lambda d: edit_config(d, lambda c: c["quantization_config"]["config_groups"]["group_0"]["weights"]
                                 .update(fields))


def _ct_g_idx(fn):
    """Give every compressed-tensors layer a weight_g_idx [K] made by ``fn(K, group_width)``."""
    def edit(t):
        for name in [n for n in t if n.endswith(".weight_shape")]:
            prefix = name[: -len(".weight_shape")]
            k, groups = int(t[name][1]), t[f"{prefix}.weight_scale"].shape[1]
            t[f"{prefix}.weight_g_idx"] = fn(k, k // groups).to(torch.int32)
    return lambda d: edit_tensors(d, edit, sync_index=True)


def _ct_targets(edit):
    """Edit the config groups' targets: ``edit(groups)`` with {group name: targets list}."""
    def apply(c):
        edit({k: g["targets"] for k, g in c["quantization_config"]["config_groups"].items()})
    return lambda d: edit_config(d, apply)


def _move(name: str, src: str, dst: str):
    return _ct_targets(lambda g: (g[src].remove(name), g[dst].append(name)))


EIGHT_BIT_DOWN = "model.layers.0.mlp.down_proj"
FOUR_BIT_UP = "model.layers.0.mlp.up_proj"


def _in_order(k, width):
    return torch.arange(k) // width


def _shuffled(k, width):
    return (torch.arange(k) // width)[torch.randperm(k, generator=torch.Generator().manual_seed(k))]


def _one_group_short(k, width):
    g = torch.arange(k) // width
    g[0] = 1  # group 0 loses a column to group 1
    return g


def _auto_round(packing: str):
    """The GEMM checkpoint's config in AutoRound's dialect."""
    return lambda d: edit_config(d, lambda c: c.__setitem__("quantization_config", {
        "quant_method": "auto-round", "bits": 4, "group_size": 64, "sym": False, "packing_format": packing,
        "data_type": "int", "autoround_version": "0.16.1"}))


def _gptq_v1_overflow(d: Path):
    edit_config(d, lambda c: c["quantization_config"].__setitem__("checkpoint_format", "gptq"))
    _set(f"{Q_PROJ}.qzeros", lambda t: torch.full_like(t, -1))(d)  # every stored nibble 15 -> z = 16


def _replace_with_a_file(d: Path) -> None:
    shutil.rmtree(d)
    d.write_text("not a folder")


def _ragged_last_group(d: Path) -> None:
    """Group size 48 over in_features 128/256: a padded last group, one more scales/qzeros row."""
    edit_tensors(
        d, lambda t: t.update({n: torch.cat([v, v[-1:]]) for n, v in t.items() if n.endswith((".scales", ".qzeros"))})
    )
    _qcfg("group_size", 48)(d)


def _int8_zero_point_out_of_range(d: Path) -> None:
    def edit(t):
        unpack_ct_zero_points(t)
        t[f"{Q_PROJ}.weight_zero_point"][0, 0] = 100

    edit_tensors(d, edit)


def _awq_config(d: Path) -> None:
    edit_config(
        d,
        lambda c: c.__setitem__(
            "quantization_config",
            {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm"},
        ),
    )


EXPERT_1_W2 = "model.layers.1.block_sparse_moe.experts.1.w2."
ROUTER_0 = "model.layers.0.block_sparse_moe.gate"


def _drop_expert_tensors(d: Path) -> None:
    edit_tensors(d, lambda t: [t.pop(n) for n in [n for n in t if n.startswith(EXPERT_1_W2)]], sync_index=True)


def _rename_experts_as_qwen(d: Path) -> None:
    """Mixtral experts written with Qwen-MoE / transformers 5 projection names: 4.51 and vLLM do not map them."""
    names = {".w1.": ".gate_proj.", ".w2.": ".down_proj.", ".w3.": ".up_proj."}

    def rename(t):
        for n in [n for n in t if ".experts." in n]:
            new = next((n.replace(a, b) for a, b in names.items() if a in n), n)
            t[new] = t.pop(n)

    edit_tensors(d, rename, sync_index=True)


def _quantise_router(d: Path) -> None:
    def pack(t):
        if ROUTER_0 + ".weight" not in t:
            return
        w = t.pop(ROUTER_0 + ".weight").float()
        w = torch.cat([w, torch.zeros(8 - w.shape[0], w.shape[1])])  # out_features padded to one int32 of codes
        q = awq_gemm.pack(quantize(w, QuantSpec(4, 64)))
        t.update({f"{ROUTER_0}.{k}": v for k, v in q.items()})

    edit_tensors(d, pack, sync_index=True)
    edit_config(d, lambda c: c["quantization_config"].__setitem__("modules_to_not_convert", []))


DEFECTS = [
    Defect("expert 1 of layer 1 lacks w2", "moe.experts-complete", _drop_expert_tensors, base="moe",
           where="model.layers.1.block_sparse_moe.experts.1"),
    Defect("config declares 8 experts, 4 stored", "moe.expert-count",
           lambda d: edit_config(d, lambda c: c.__setitem__("num_local_experts", 8)), base="moe",
           where="config.json"),
    Defect("Mixtral router quantised", "moe.router-float", _quantise_router, base="moe", where=ROUTER_0),
    Defect("Mixtral experts named gate/up/down_proj", "moe.expert-names", _rename_experts_as_qwen, base="moe",
           where="block_sparse_moe"),
    Defect("config.json missing", "config.present", lambda d: (d / "config.json").unlink()),
    Defect("config.json not JSON", "config.present", lambda d: (d / "config.json").write_text("{'bits': 4,")),
    Defect(
        "no quantization_config",
        "config.quantization",
        lambda d: edit_config(d, lambda c: c.pop("quantization_config")),
    ),
    Defect("bits 8 declared, 4-bit tensors", "config.matches-tensors", _qcfg("bits", 8)),
    Defect("group size 128 declared, tensors g64", "config.matches-tensors", _qcfg("group_size", 128)),
    Defect("GEMM tensors labelled gemv", "config.matches-tensors", _qcfg("version", "gemv")),
    Defect("zero_point false, asymmetric zeros", "config.matches-tensors", _qcfg("zero_point", False)),
    Defect("GPTQ sym true, asymmetric zeros", "config.matches-tensors", lambda d: _qcfg("sym", True)(d), base="gptq"),
    Defect(
        "scales without qweight",
        "tensors.complete",
        lambda d: edit_tensors(
            d,
            lambda t: t.update({"model.layers.0.mlp.extra.scales": torch.ones(2, 128, dtype=torch.float16)}),
            sync_index=True,
        ),
    ),
    Defect(
        "AutoAWQ-internal keys w_bit/q_group_size",
        "loader.transformers",
        lambda d: edit_config(
            d,
            lambda c: c.__setitem__(
                "quantization_config",
                {"quant_method": "awq", "w_bit": 4, "q_group_size": 64, "zero_point": True, "version": "gemm"},
            ),
        ),
    ),
    Defect(
        "absurd hidden_size", "config.numbers", lambda d: edit_config(d, lambda c: c.__setitem__("hidden_size", 10**13))
    ),
    Defect("one layer lacks qzeros", "tensors.complete", _drop(f"{Q_PROJ}.qzeros")),
    Defect("qzeros has an extra row", "tensors.shape", _set(f"{Q_PROJ}.qzeros", lambda t: torch.cat([t, t[:1]]))),
    Defect("qweight stored as float32", "tensors.dtype", _set(f"{Q_PROJ}.qweight", lambda t: t.view(torch.float32))),
    Defect("quantised lm_head, undeclared", "modules.lm-head", _quantise_lm_head),
    Defect(
        "modules_to_not_convert lists a quantised layer",
        "modules.not-convert",
        _qcfg("modules_to_not_convert", ["q_proj"]),
    ),
    Defect("NaN scale", "scales.finite", _set(f"{Q_PROJ}.scales", _nan_first)),
    Defect("negative scale", "scales.positive", _set(f"{Q_PROJ}.scales", _neg_first)),
    Defect("all scales ~0", "scales.tiny", _set(f"{Q_PROJ}.scales", lambda t: t * 1e-4)),
    Defect("bf16 scale beyond fp16 range", "scales.fp16-range", _set(f"{Q_PROJ}.scales", _bf16_huge)),
    Defect(
        "zeros off by one (GPTQ-v1 z-1)",
        "numeric.zero-offset",
        lambda d: edit_tensors(d, lambda t: map_packed(t, "qzeros", lambda c: (c - 1).clamp(0, 15))),
    ),
    Defect(
        "qweight packed in natural nibble order",
        "numeric.code-zero-coherence",
        lambda d: edit_tensors(d, lambda t: repack_natural(t, "qweight")),
    ),
    Defect("zero-filled qweight", "numeric.zero-filled", _set(f"{Q_PROJ}.qweight", torch.zeros_like)),
    Defect("NaN in embeddings", "floats.finite", _set("model.embed_tokens.weight", _nan_first)),
    Defect(
        "index names a tensor its shard lacks",
        "index.missing-tensor",
        _index(lambda wm: wm.__setitem__("model.ghost.weight", wm["model.norm.weight"])),
    ),
    Defect(
        "shard holds a tensor the index omits", "index.extra-tensor", lambda d: _move_to_other_shard(d, duplicate=False)
    ),
    Defect("tensor in two shards", "index.duplicate", lambda d: _move_to_other_shard(d, duplicate=True)),
    Defect(
        "index names a missing shard",
        "index.missing-shard",
        _index(lambda wm: wm.__setitem__("model.norm.weight", "model-00009-of-00009.safetensors")),
    ),
    Defect("truncated shard", "file.truncated", _first_shard(_truncate)),
    Defect("header length 2^40", "file.header", _first_shard(_header_length)),
    Defect("overlapping tensor offsets", "file.offsets", _first_shard(lambda p: edit_header(p, _overlap))),
    Defect("shape disagrees with byte length", "file.byte-length", _first_shard(lambda p: edit_header(p, _grow_shape))),
    Defect("unknown dtype", "file.dtype", _first_shard(lambda p: edit_header(p, _bad_dtype))),
    Defect("symlink out of the folder", "file.outside-folder", _escape_symlink),
    Defect("index shard path escapes the folder", "file.outside-folder", _escape_index),
    Defect("pickle weights only", "file.pickle", _pickle_only, exit_code=2, where="pytorch_model.bin"),
    Defect("compressed-tensors weight_shape wrong", "ct.weight-shape", _ct_weight_shape, base="ct"),
    Defect("AutoRound packing_format this verifier does not read", "config.quantization",
           _auto_round("auto_round:marlin"), where="packing_format"),
    Defect("scale_dtype bf16 over fp16 scales", "ct.dtype-fields", _ct_weights(scale_dtype="torch.bfloat16"),
           base="ct", where="config.json"),
    Defect("zp_dtype a float dtype", "ct.dtype-fields", _ct_weights(zp_dtype="torch.float16"), base="ct",
           where="zp_dtype"),
    Defect("zp_dtype key that older compressed-tensors rejects", "ct.dtype-fields-compat",
           _ct_weights(zp_dtype="torch.int8"), base="ct", severity="warning", exit_code=0, where="zp_dtype"),
    Defect("weight_g_idx without actorder 'group'", "ct.g-idx", _ct_g_idx(_in_order), base="ct",
           where=f"{Q_PROJ}.weight_g_idx"),
    Defect("actorder 'group' without weight_g_idx", "ct.g-idx", _ct_weights(actorder="group"), base="ct",
           where=f"{Q_PROJ}.weight_g_idx"),
    Defect("act-order golden with its weight_g_idx dropped", "ct.g-idx",
           lambda d: edit_tensors(d, lambda t: [t.pop(n) for n in [n for n in t if n.endswith(".weight_g_idx")]]),
           base="ct-actorder", where=".weight_g_idx"),
    Defect("weight_g_idx with a group one column short", "ct.g-idx",
           lambda d: (_ct_weights(actorder="group")(d), _ct_g_idx(_one_group_short)(d)), base="ct",
           where=f"{Q_PROJ}.weight_g_idx"),
    Defect(
        "compressed-tensors zero points packed with AWQ's interleave",
        "numeric.code-zero-coherence",
        lambda d: edit_tensors(d, lambda t: _interleave_ct_zeros(t)),
        base="ct",
    ),
    Defect(
        "GPTQ v1 zero that overflowed", "gptq.zeros", _gptq_v1_overflow, base="gptq", severity="warning", exit_code=None
    ),
    Defect(
        "GPTQ v2 file read as v1 (zeros off by one)",
        "numeric.zero-offset",
        lambda d: edit_config(d, lambda c: c["quantization_config"].__setitem__("checkpoint_format", "gptq")),
        base="gptq",
    ),
    Defect("checkpoint path is a file", "file.folder", _replace_with_a_file, exit_code=2, where="gemm is not a folder"),
    Defect(
        "index is not JSON", "index.valid", lambda d: (d / "model.safetensors.index.json").write_text('{"weight_map": ')
    ),
    Defect("bits given as a string", "config.values", _qcfg("bits", "4"), where="config.json"),
    Defect(
        "AWQ config over unquantised weights",
        "format.detected",
        _awq_config,
        base="reference",
        where="declares gemm",
    ),
    Defect(
        "group size 48 does not divide in_features",
        "layout.divisibility",
        _ragged_last_group,
        where=f"{Q_PROJ}.qweight",
    ),
    Defect("8 bits declared for vLLM's 4-bit AWQ loader", "loader.vllm", _qcfg("bits", 8), where="config.json"),
    Defect(
        "zero_point false: no AWQ Marlin type",
        "loader.marlin",
        _qcfg("zero_point", False),
        severity="warning",
        where="config.json",
    ),
    Defect(
        "tiny o_proj at tensor-parallel 4: 32 inputs a rank, group 64",
        "loader.tensor-parallel",
        intact,
        severity="warning",
        exit_code=0,
        where="model.layers.0.self_attn.o_proj",
    ),
    Defect("actorder 'group' that compressed-tensors 0.19 refuses", "ct.actorder-compat",
           lambda d: (_ct_weights(actorder="group")(d), _ct_g_idx(_shuffled)(d)), base="ct", severity="warning",
           exit_code=None, where="config_groups.group_0"),
    Defect("a module in both config groups", "ct.targets",
           _ct_targets(lambda g: g["group_0"].append(EIGHT_BIT_DOWN)), base="ct-mixed", where=EIGHT_BIT_DOWN),
    Defect("a quantised module no config group targets", "ct.targets",
           _ct_targets(lambda g: g["group_0"].remove(FOUR_BIT_UP)), base="ct-mixed", where=FOUR_BIT_UP),
    Defect("config group targets naming a missing module", "ct.targets",
           _ct_targets(lambda g: g["group_1"].append("model.layers.7.mlp.down_proj")), base="ct-mixed",
           where="model.layers.7.mlp.down_proj"),
    Defect("an 8-bit group's module packed as 4-bit", "config.matches-tensors",
           _move(FOUR_BIT_UP, "group_0", "group_1"), base="ct-mixed", where=FOUR_BIT_UP),
    Defect("a 4-bit group's module packed as 8-bit", "config.matches-tensors",
           _move(EIGHT_BIT_DOWN, "group_1", "group_0"), base="ct-mixed", where=EIGHT_BIT_DOWN),
    Defect("q_proj in another config group than k_proj and v_proj", "ct.fused-schemes",
           _move("model.layers.0.self_attn.q_proj", "group_0", "group_1"), base="ct-mixed", severity="warning",
           exit_code=None, where="model.layers.0.self_attn"),
    Defect(
        "compressed-tensors int8 zero point outside [-8, 7]",
        "zeros.range",
        _int8_zero_point_out_of_range,
        base="ct",
        where=f"{Q_PROJ}.weight_zero_point",
    ),
]


def _interleave_ct_zeros(t: dict) -> None:
    from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last

    for name in [n for n in t if n.endswith(".weight_zero_point")]:
        codes = unpack_last(t[name].t().contiguous(), 4)
        t[name] = pack_last(codes, 4, awq_gemm.ORDER).t().contiguous()
