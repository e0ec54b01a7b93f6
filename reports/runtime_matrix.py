"""The report's runtime-matrix section: what each requested serving runtime does with each
checkpoint's layers at each (tensor-parallel size, device), recorded by ``verify --target``
(``conformance.runtimes``; entries of the ``runtime_matrix`` section, one per cell).

    entry fields   checkpoint, target, layer (linear kind and shape, or "attention heads"),
                   tp, device, verdict (loads | fallback | refuses | misreads | unknown)
                   (optional: version, kernel, rule, source, why, checked)

The view is one table per (checkpoint, target): rows = layers, columns = (TP, device), and a
per-configuration verdict (the worst of its cells).
"""
from __future__ import annotations

from typing import Any

ORDER = {"loads": 0, "fallback": 1, "unknown": 2, "misreads": 3, "refuses": 4}


def _label(e: dict[str, Any]) -> str:
    kernel = e.get("kernel") or ""
    return {"loads": kernel or "ok", "fallback": f"~{kernel}"}.get(e["verdict"], e["verdict"])


def _table(entries: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(dict.fromkeys((e["tp"], e["device"]) for e in entries))
    layers = list(dict.fromkeys(e["layer"] for e in entries))
    cells = {(e["layer"], e["tp"], e["device"]): e for e in entries}
    rows = [{"layer": lay, "cells": [cells.get((lay, tp, d)) for tp, d in columns]} for lay in layers]
    worst = [max((c["verdict"] for r in rows if (c := r["cells"][i])), key=ORDER.__getitem__)
             for i in range(len(columns))]
    return {"columns": [f"TP{tp} {d}" for tp, d in columns], "rows": rows, "worst": worst}


def view(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table per (checkpoint, target, version), in recording order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for e in entries:
        groups.setdefault((e["checkpoint"], e["target"], e.get("version", "")), []).append(e)
    return [{"checkpoint": c, "target": t, "version": v, **_table(es), "label": _label}
            for (c, t, v), es in groups.items()]
