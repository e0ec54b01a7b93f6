"""The runtime matrix of a checkpoint, its findings and its JSON section.

Per requested target: one row for the attention heads (a model-level rule) and one per
distinct linear (kind, N, K, group, bits, symmetry), by (tensor-parallel size, device) cell.

Exit-code policy: a matrix answers a deployer's question, and a checkpoint is not wrong
because TP 8 cannot split its shapes, so a cell that refuses or misreads is a
``runtime.refuses`` **warning** (one per target, TP and device). It is an **error** when the
deployer says the target is required (``verify --require-target``), and ``runtime.unservable``
is an error when a requested target refuses *every* requested (TP, device): then nothing that
was asked for can serve the checkpoint. Slower fallbacks are ``runtime.fallback`` info.
These rules live in ``RUNTIME_RULES``, outside ``conformance.rules.RULES``: they run only with
``--target``.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from awq_harness.conformance.declared import Declared
from awq_harness.conformance.findings import Finding, Report, Rule
from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import Model, Row, act_dtype, heads_split, partition, rows
from awq_harness.conformance.structure import Layer

RUNTIME_REFUSES = Rule("runtime.refuses",
                       "each requested target runtime loads every layer at each requested TP size and device",
                       "warning")
RUNTIME_UNSERVABLE = Rule("runtime.unservable",
                          "each requested target runtime serves at least one requested (TP, device)")
RUNTIME_FALLBACK = Rule("runtime.fallback", "layers that a requested runtime runs on a slower fallback kernel",
                        "info")
RUNTIME_RULES = {r.id: r for r in (RUNTIME_REFUSES, RUNTIME_UNSERVABLE, RUNTIME_FALLBACK)}
BAD = ("refuses", "misreads")
ORDER = {"loads": 0, "fallback": 1, "unknown": 2, "misreads": 3, "refuses": 4}
HEADS = "attention heads"
MOE = ".experts."
KINDS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj", "gate_proj", "up_proj", "gate_up_proj", "down_proj")


def _order(row: Row) -> tuple:
    return (row.prefixes[0].count("."), KINDS.index(row.kind) if row.kind in KINDS else len(KINDS), row.kind, row.n)


def _cell(runtime: ModuleType, version: str, row: Row, tp: int, device: str, fmt: str, model: Model) -> dict:
    part = partition(row, tp, model)
    if MOE in row.prefixes[0]:
        c = runtime.expert_cell(device) if hasattr(runtime, "expert_cell") else None
        c = c or Cell("unknown", None, "runtime.moe", Source("-", "fused MoE kernels"),
                      "MoE expert linears run on fused-MoE kernels, which these profiles do not model", "source")
    else:
        c = runtime.cell(row, part, tp, device, fmt, version)
    return {"tp": tp, "device": device, **c.to_dict(),
            "n_part": part.n, "k_part": part.k, "merged_n_part": part.merged_n}


def _heads(runtime: ModuleType, model: Model, tps, devices) -> dict | None:
    if not hasattr(runtime, "heads_cell") or not model.heads:
        return None
    cells = [{"tp": tp, "device": d, **runtime.heads_cell(heads_split(model, tp), d).to_dict()}
             for tp in tps for d in devices]
    return {"kind": HEADS, "heads": model.heads, "kv_heads": model.kv_heads, "count": 1, "cells": cells}


def _row(runtime, version, row: Row, tps, devices, fmt, model) -> dict:
    return {"kind": row.kind, "n": row.n, "k": row.k, "group": row.group, "bits": row.bits,
            "symmetric": row.symmetric, "act_order": row.g_idx, "count": row.count,
            "merged": [kind for kind, _ in row.merged] if len(row.merged) > 1 else [],
            "example": row.prefixes[0],
            "cells": [_cell(runtime, version, row, tp, d, fmt, model) for tp in tps for d in devices]}


def _configs(table: list[dict], tps, devices) -> list[dict]:
    """Per (TP, device): the worst verdict over the rows."""
    out = []
    for i, (tp, d) in enumerate((tp, d) for tp in tps for d in devices):
        worst = max((r["cells"][i]["verdict"] for r in table), key=ORDER.__getitem__, default="unknown")
        out.append({"tp": tp, "device": d, "verdict": worst})
    return out


def target_matrix(runtime: ModuleType, version: str, layers: list[Layer], decl: Declared, fmt: str,
                  config: dict | None, tps, devices) -> dict:
    model = Model.from_config(config)
    table = [r for r in [_heads(runtime, model, tps, devices)] if r]
    table += [_row(runtime, version, row, tps, devices, fmt, model)
              for row in sorted(rows(layers, decl, act_dtype(config)), key=_order)]
    return {"target": runtime.NAME, "version": version, "format": fmt, "rows": table,
            "configs": _configs(table, tps, devices)}


def build(targets, layers: list[Layer], decl: Declared, fmt: str, config: dict | None, tps, devices) -> dict:
    return {"tp": list(tps), "devices": list(devices),
            "targets": [target_matrix(rt, v, layers, decl, fmt, config, tps, devices) for rt, v in targets]}


def _bad_rows(t: dict, i: int) -> list[str]:
    return [f"{r['kind']} ({r['cells'][i]['why']})" for r in t["rows"] if r["cells"][i]["verdict"] in BAD]


def findings(section: dict, require: bool) -> list[Finding]:
    out = []
    for t in section["targets"]:
        name = f"{t['target']} {t['version']}"
        for i, c in enumerate(t["configs"]):
            where = f"TP {c['tp']} on {c['device']}"
            if c["verdict"] in BAD:
                bad = _bad_rows(t, i)
                out.append(RUNTIME_REFUSES.finding(
                    f"{name} {c['verdict']} at {where}: {'; '.join(bad[:3])}" + (" ..." if len(bad) > 3 else ""),
                    "config.json", severity="error" if require else None))
            elif c["verdict"] == "fallback":
                slow = [r["kind"] for r in t["rows"] if r["cells"][i]["verdict"] == "fallback"]
                out.append(RUNTIME_FALLBACK.finding(f"{name} at {where} runs {', '.join(slow)} on a slower kernel"))
        if t["configs"] and all(c["verdict"] in BAD for c in t["configs"]):
            out.append(RUNTIME_UNSERVABLE.finding(
                f"{name} refuses every requested configuration (TP {sorted({c['tp'] for c in t['configs']})} on "
                f"{sorted({c['device'] for c in t['configs']})})", "config.json"))
    return out


def counts(section: dict) -> dict[str, int]:
    """Cells by how they can be confirmed without a GPU (cells.CHECKS)."""
    out: dict[str, int] = {}
    for t in section["targets"]:
        for r in t["rows"]:
            for c in r["cells"]:
                out[c["checked"]] = out.get(c["checked"], 0) + 1
    return out


def add_to_report(report: Report, section: dict, require: bool) -> None:
    report.runtime_matrix = section
    report.findings += findings(section, require)
    report.rules_run += list(RUNTIME_RULES)


@dataclass(frozen=True)
class MatrixRequest:
    """What ``verify --target/--tp/--gpu`` asks for: (runtime module, version) pairs, TP sizes,
    devices, and whether a refusing cell is an error (``--require-target``)."""
    targets: tuple
    tps: tuple[int, ...]
    devices: tuple[str, ...]
    require: bool = False


def add_matrix(report: Report, request: MatrixRequest, layers: list[Layer], decl: Declared,
               config: dict | None) -> None:
    """The matrix of the layers a verification read (local or remote) into ``report``."""
    add_to_report(report, build(request.targets, layers, decl, report.format or "", config, request.tps,
                                request.devices), request.require)
