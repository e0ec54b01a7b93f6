"""With ``--reference FP_DIR``: per-layer reconstruction error against the original weights.

For each quantised layer, W is ``<prefix>.weight`` of the float checkpoint and W_hat the
dequantised layer. We report the relative error ||W_hat - W|| / ||W|| and the SQNR
10 log10(||W||^2 / ||W_hat - W||^2) in dB, and rank layers worst first.

AWQ folds its per-input-channel scales into the weights (and, for v_proj / up_proj, per
output channel), so W_hat approximates diag(r) W diag(c), not W. We therefore also fit r and
c by alternating least squares and report the error after that alignment; the rule
``reference.error`` judges the aligned error, so an AWQ checkpoint is not blamed for the
scaling that makes it good, while a wrong nibble order or zero stays far off.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import replace

import torch

from awq_harness.conformance import decode
from awq_harness.conformance.findings import Finding, Rule
from awq_harness.conformance.folder import open_folder
from awq_harness.conformance.reader import TensorReader
from awq_harness.conformance.remote import RemoteError, close, is_remote, open_remote
from awq_harness.conformance.safeheader import FILE_FOLDER
from awq_harness.conformance.structure import Layer

REFERENCE_ERROR = Rule("reference.error", "per-layer reconstruction error against the float reference")
REFERENCE_MISSING = Rule("reference.missing",
                         "the reference has a float weight of the right shape for every quantised layer")

# fetched whole with a remote reference, when the server has them: the functional check tokenises with them
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
              "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json")
MAX_ALIGNED_ERROR = 0.35  # 4-bit RTN measures ~0.1; a scrambled layer ~1.4
ALS_STEPS = 3


def _aligned_error(w: torch.Tensor, w_hat: torch.Tensor) -> float:
    r = torch.ones(w.shape[0], 1, device=w.device)
    c = torch.ones(1, w.shape[1], device=w.device)
    for _ in range(ALS_STEPS):
        wr = w * r
        c = ((w_hat * wr).sum(0, keepdim=True) / wr.pow(2).sum(0, keepdim=True).clamp(min=1e-30)).clamp(min=1e-6)
        wc = w * c
        r = ((w_hat * wc).sum(1, keepdim=True) / wc.pow(2).sum(1, keepdim=True).clamp(min=1e-30)).clamp(min=1e-6)
    fitted = w * r * c
    return float(torch.linalg.norm(w_hat - fitted) / torch.linalg.norm(fitted).clamp(min=1e-30))


def layer_error(w: torch.Tensor, w_hat: torch.Tensor) -> dict:
    err2 = float((w_hat - w).double().pow(2).sum())
    sig2 = float(w.double().pow(2).sum())
    rel = math.sqrt(err2 / sig2) if sig2 else float("inf")
    sqnr = 10 * math.log10(sig2 / err2) if err2 and sig2 else (float("inf") if sig2 else float("-inf"))
    return {"rel_error": rel, "sqnr_db": sqnr, "aligned_rel_error": _aligned_error(w, w_hat)}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _from_reference(f: Finding) -> Finding:
    """A finding met while reading the reference folder, said of the reference."""
    if f.rule == FILE_FOLDER.id:
        return REFERENCE_MISSING.finding("reference: " + f.message, f.file, f.tensor, f.severity)
    return replace(f, message="reference: " + f.message)


@contextmanager
def opened(reference: str, cache=None):
    """The reference as a local folder: ``(folder, remote, findings)``. A folder is itself (remote
    None); a URL (conformance/remote.py) is a sparse local copy of its JSON files, tokenizer and
    shard headers, whose tensor bytes ``remote`` fetches when they are read, through ``cache``."""
    if not is_remote(reference):
        yield reference, None, []
        return
    try:
        files, found = open_remote(reference, cache, SIDE_FILES)
    except RemoteError as err:
        raise RemoteError(f"reference: {err}") from None
    try:
        yield str(files.root), files, [_from_reference(f) for f in found]
    except RemoteError as err:
        raise RemoteError(f"reference: {err}") from None
    finally:
        close(files)


def compare(layers: list[Layer], reader: TensorReader, v1: bool, reference: str,
            remote=None) -> tuple[list[Finding], list[dict]]:
    """``remote``: the reference's RemoteFiles when it is a URL (see ``opened``)."""
    ref = open_folder(reference)
    findings = [_from_reference(f) for f in ref.findings if f.severity == "error" and not f.rule.startswith("config.")]
    ref_reader, rows = TensorReader(remote=remote), []
    for layer in layers:
        info = ref.tensors.get(layer.prefix + ".weight")
        if info is None or info.shape != (layer.dims.n, layer.dims.k) or not info.is_float:
            findings.append(REFERENCE_MISSING.finding(
                f"reference has no float [{layer.dims.n}, {layer.dims.k}] {layer.prefix}.weight",
                reference, layer.prefix))
            continue
        w = ref_reader.get(info).float()
        t = {s: reader.get(i) for s, i in layer.infos.items()}
        w_hat = decode.weight(layer, t, v1)
        rows.append({"layer": layer.prefix, **layer_error(w, w_hat)})
    rows.sort(key=lambda r: (r["sqnr_db"] if math.isfinite(r["sqnr_db"]) else -1e9, r["layer"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        bad = not row["aligned_rel_error"] <= MAX_ALIGNED_ERROR
        verdict = f" > {MAX_ALIGNED_ERROR}: not a quantisation of the reference weight" if bad else ""
        findings.append(REFERENCE_ERROR.finding(
            f"rank {rank}: rel error {row['rel_error']:.4f}, SQNR {row['sqnr_db']:.1f} dB, "
            f"after AWQ-scale alignment {row['aligned_rel_error']:.4f}" + verdict,
            tensor=row["layer"], severity="error" if bad else "info"))
        for key in ("rel_error", "sqnr_db", "aligned_rel_error"):
            row[key] = _finite(row[key])
    return findings, rows
