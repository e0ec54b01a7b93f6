"""Manifests of golden checkpoints and readable comparisons against them.

A manifest (``manifest.json`` inside each golden folder) records: the spec, sha256 of every
other file, a sha256 per tensor with dtype and shape, expected logits on fixed token ids
(a slice, with tolerances) from our loader, the versions that generated it, and the numerics
pin it was built under (``awq_ref.primitives.reproducible``; "unpinned" for an in-process test rebuild).
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint, read_tensors
from awq_harness.awq_ref.primitives import reproducible

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
TOKEN_IDS = [1, 17, 42, 99, 123, 256, 300, 311, 400, 415, 451, 480, 500, 505, 510, 511]
POSITIONS, VOCAB_SLICE = [0, 7, 15], 64
LOGITS_ATOL = LOGITS_RTOL = 1e-4  # float32 forward; BLAS order differs between machines
LIBRARIES = ("awq-harness", "torch", "transformers", "safetensors")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensor_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()


def load_golden_model(folder: Path):
    """Our loader: the AWQ reference modules, or the verified decode path for other formats."""
    q = json.loads((folder / "config.json").read_text())["quantization_config"]
    if q.get("quant_method") == "awq":
        return load_checkpoint(folder)
    from awq_harness.conformance.dequantized import load_dequantized

    return load_dequantized(folder)


@torch.no_grad()
def greedy_with_margins(model, token_ids: list[int], steps: int) -> tuple[list[int], list[float]]:
    """Greedy continuation of ``token_ids`` and, per step, the top-1 minus top-2 logit margin
    (a loader in another precision may break a near-tie either way)."""
    ids, tokens, margins = torch.tensor([token_ids]), [], []
    for _ in range(steps):
        top = model(ids).logits[0, -1].topk(2)
        tokens.append(int(top.indices[0]))
        margins.append(float(top.values[0] - top.values[1]))
        ids = torch.cat([ids, top.indices[:1][None]], dim=1)
    return tokens, margins


def reference_logits(folder: Path) -> list[list[list[float]]]:
    model = load_golden_model(folder)
    with torch.no_grad():
        logits = model(torch.tensor([TOKEN_IDS])).logits[0]
    return logits[POSITIONS, :VOCAB_SLICE].tolist()


def build_manifest(folder: Path, spec_json: dict) -> dict:
    tensors = read_tensors(folder)
    return {
        "format_version": FORMAT_VERSION,
        "spec": spec_json,
        "files": {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST},
        "tensors": {name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                           "sha256": tensor_sha256(t)} for name, t in sorted(tensors.items())},
        "logits": {"token_ids": TOKEN_IDS, "positions": POSITIONS, "vocab_slice": VOCAB_SLICE,
                   "atol": LOGITS_ATOL, "rtol": LOGITS_RTOL, "values": reference_logits(folder)},
        "generator": {lib: metadata.version(lib) for lib in LIBRARIES},
        "numerics": reproducible.describe() if reproducible.is_pinned() else "unpinned",
    }


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"shape/dtype {list(a.shape)} {a.dtype} vs {list(b.shape)} {b.dtype}"
    flat = (a.reshape(-1) != b.reshape(-1)).nonzero()
    index = tuple(int(i) for i in torch.unravel_index(flat[0, 0], a.shape))
    count = int(flat.shape[0])
    return f"first differing element {index}: golden {a[index].item()!r}, now {b[index].item()!r} ({count} differ)"


def tensor_drift(golden: Path, rebuilt: Path) -> list[str]:
    """One line per tensor whose bytes differ, naming the tensor and its first differing element."""
    old, new = read_tensors(golden), read_tensors(rebuilt)
    lines = [f"tensor {n}: missing after rebuild" for n in sorted(set(old) - set(new))]
    lines += [f"tensor {n}: new after rebuild" for n in sorted(set(new) - set(old))]
    for name in sorted(set(old) & set(new)):
        if tensor_sha256(old[name]) != tensor_sha256(new[name]) or old[name].dtype != new[name].dtype:
            lines.append(f"tensor {name}: {_first_difference(old[name], new[name])}")
    return lines


def file_drift(golden: Path, rebuilt: Path) -> list[str]:
    """Files whose bytes differ (config.json and the like, beyond the tensors)."""
    want = read_manifest(golden)["files"]
    have = {p.name: file_sha256(p) for p in sorted(rebuilt.iterdir()) if p.name != MANIFEST}
    return [f"file {name}: {'missing' if name not in have else 'new' if name not in want else 'bytes differ'}"
            for name in sorted(set(want) | set(have)) if want.get(name) != have.get(name)]


def numerics_drift(golden: Path, rebuilt: Path) -> list[str]:
    """The numerics pin the golden was built under, against the rebuild's."""
    want, have = read_manifest(golden).get("numerics"), read_manifest(rebuilt).get("numerics")
    return [] if want == have else [f"numerics: golden built under {want}, rebuilt under {have}"]


def logits_drift(folder: Path) -> list[str]:
    expected = read_manifest(folder)["logits"]
    want = torch.tensor(expected["values"])
    got = torch.tensor(reference_logits(folder))
    if torch.allclose(got, want, atol=expected["atol"], rtol=expected["rtol"]):
        return []
    worst = (got - want).abs().max().item()
    return [f"logits differ from the manifest by up to {worst:.3g} (atol {expected['atol']}, rtol {expected['rtol']})"]
