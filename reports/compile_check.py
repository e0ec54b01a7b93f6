"""The report's compile-check section: every kernel configuration compiled for a GPU
architecture on the CPU (``kernels.compile_check``; entries of the ``compile_check`` section,
one per compilation), as a table and a per-architecture summary.

    entry fields   arch, kernel, dtype, ok, config {block_m, block_n, block_k, split_k,
                   num_warps, num_stages}, registers, spill_bytes, shared_bytes, shared_limit,
                   mma ("wgmma" | "mma.sync" | null), errors [...], control (the negative
                   control: a configuration made to exceed shared memory, which must fail)
"""
from __future__ import annotations

from typing import Any


def tile(entry: dict[str, Any]) -> str:
    c = entry.get("config") or {}
    if not c:
        return "–"
    return (f"{c.get('block_m')}x{c.get('block_n')}x{c.get('block_k')} split {c.get('split_k')} "
            f"w{c.get('num_warps')} s{c.get('num_stages')}")


def summary(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per architecture: compilations, failures, the largest registers and shared memory seen."""
    rows: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.get("control"):
            continue
        row = rows.setdefault(e["arch"], {"arch": e["arch"], "cases": 0, "failed": 0, "max_registers": 0,
                                          "max_shared": 0, "shared_limit": e.get("shared_limit")})
        row["cases"] += 1
        row["failed"] += 0 if e["ok"] else 1
        row["max_registers"] = max(row["max_registers"], e.get("registers") or 0)
        row["max_shared"] = max(row["max_shared"], e.get("shared_bytes") or 0)
    return [rows[a] for a in sorted(rows)]


def view(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the template shows; ``failing``: matrix cases that failed, or a control that passed."""
    rows = [{**e, "tile": tile(e)} for e in entries]
    failing = [r for r in rows if (not r["ok"]) != bool(r.get("control"))]
    return {"rows": rows, "summary": summary(entries), "failing": failing}
