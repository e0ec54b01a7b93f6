"""Per-GPU speed-up baselines with a two-sided band (kernels/baselines/<device-slug>.json).

    {"schema": 1, "device": "NVIDIA A10", "band": 0.10, "speedups": {"<kernel>|<shape>|M=<m>": 3.41}}

A run passes when baseline*(1-band) <= speedup <= baseline*(1+band). Faster than the band
fails too: the baseline is stale and must be rewritten (explicitly: --kernel-baseline-write,
then review the JSON diff), so regressions are always measured against a current number.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

BASELINE_DIR = Path(__file__).resolve().parent.parent / "baselines"
DEFAULT_BAND = 0.10
SCHEMA = 1


def device_slug(device: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")


def baseline_path(device: str, directory: Path = BASELINE_DIR) -> Path:
    return Path(directory) / f"{device_slug(device)}.json"


def load_baseline(path: Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: baseline schema {data.get('schema')!r}, expected {SCHEMA}")
    return data


def threshold(baseline: dict | None, key: str) -> dict | None:
    if baseline is None or key not in baseline["speedups"]:
        return None
    value, band = float(baseline["speedups"][key]), float(baseline["band"])
    return {"baseline": value, "band": band, "low": value * (1 - band), "high": value * (1 + band)}


def within(speedup: float, band: dict | None) -> bool | None:
    return None if band is None else band["low"] <= speedup <= band["high"]


def write_baseline(path: Path, device: str, records: list[dict], band: float = DEFAULT_BAND) -> None:
    speedups = {f"{r['kernel']}|{r['shape']}|M={r['M']}": r["speedup"] for r in records}
    data = {"schema": SCHEMA, "device": device, "band": band, "speedups": dict(sorted(speedups.items()))}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=1) + "\n")
