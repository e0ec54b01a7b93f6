"""``awq-harness verify PATH``: check a checkpoint against the conformance rules.

Exit code 0: conforms; 1: violations (error findings); 2: the checkpoint could not be read.

``--target vllm,transformers,sglang,tgi [--tp 1,2,4,8] [--gpu sm80,sm90,cpu]`` adds the runtime matrix
(conformance/runtimes): per target, layers x (TP, device) cells, for a folder or a remote
checkpoint alike (built from the layers the verification reads). A refusing cell is a warning,
an error with ``--require-target``; a target that refuses every requested cell is an error.
"""
from __future__ import annotations

import sys
from pathlib import Path

from awq_harness.awq_ref.cli.device_flag import add_device_flag
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.primitives.device import resolve_device


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check a quantised checkpoint (AWQ GEMM/GEMV, compressed-tensors, GPTQ)")
    p.add_argument("path", help="checkpoint: a folder, https://..., hf://org/name[@revision] or s3://...")
    p.add_argument("--reference", metavar="FP_DIR",
                   help="float checkpoint (a folder or a URL like PATH): per-layer reconstruction error")
    p.add_argument("--no-cache", action="store_true",
                   help="remote PATH/--reference: neither use nor fill the cache of fetched byte ranges")
    p.add_argument("--json", metavar="FILE",
                   help="write the findings as JSON (schema awq-harness/conformance-findings v1)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML page of the findings")
    p.add_argument("--markdown", metavar="FILE", help="write the findings as a Markdown table (for a model card)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read .bin/.pt weights with torch.load(weights_only=True)")
    p.add_argument("--target", metavar="RUNTIMES",
                   help="runtime matrix for these runtimes (comma-separated): vllm, vllm@0.31, transformers, sglang, "
                        "tgi")
    p.add_argument("--tp", metavar="SIZES", default="1,2,4,8",
                   help="tensor-parallel sizes of the matrix (default 1,2,4,8)")
    p.add_argument("--gpu", metavar="DEVICES", default="sm80,sm90,cpu",
                   help="devices of the matrix: sm75, sm80, sm86, sm89, sm90, cpu (the runtime's CPU build; "
                        "default sm80,sm90,cpu)")
    p.add_argument("--require-target", action="store_true",
                   help="a requested target that refuses or misreads any requested cell is an error (exit 1)")
    p.add_argument("--quiet", action="store_true", help="print only errors and the verdict")
    p.add_argument("--progress", action="store_true", default=None, help="always show a progress bar")
    add_device_flag(p)
    p.set_defaults(func=run)


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as err:
        raise HarnessError(f"cannot write {path}: {err.strerror}") from None


def _record(report) -> None:
    try:
        from awq_harness.reports.collect import record
    except ImportError:
        return
    for f in report.findings:
        record("findings", {"checkpoint": report.checkpoint, "rule": f.rule, "severity": f.severity,
                            "message": f.message, "file": f.file, "tensor": f.tensor})
    _record_matrix(report, record)
    for row in (report.functional or {}).get("layers", []):  # --reference: the per-layer picture
        for mode in ("isolated", "accumulated"):
            record("layer_errors", {"model": report.checkpoint, "layer": row["layer"], "mode": mode,
                                    "rel_error": row[f"{mode}_rel_error"], "sqnr_db": row[f"{mode}_sqnr_db"]})


def _record_matrix(report, record) -> None:
    """--target: one runtime_matrix entry per cell (reports/runtime_matrix.py)."""
    from awq_harness.conformance.runtimes.render import row_name

    for t in (report.runtime_matrix or {}).get("targets", []):
        for r in t["rows"]:
            for c in r["cells"]:
                record("runtime_matrix", {"checkpoint": report.checkpoint, "target": t["target"],
                                          "version": t["version"], "layer": row_name(r), "tp": c["tp"],
                                          "device": c["device"], "verdict": c["verdict"], "kernel": c["kernel"],
                                          "rule": c["rule"], "source": c["source"], "why": c["why"],
                                          "checked": c["checked"]})


def _print(report, quiet: bool) -> None:
    for f in report.findings:
        if f.severity == "error" or (not quiet and f.severity == "warning"):
            print(f.line())
    verdict = {0: "conforms", 1: "violations", 2: "could not be read"}[report.exit_code()]
    print(f"{report.checkpoint}: {report.format or 'unknown format'}: {verdict} "
          f"({report.count('error')} errors, {report.count('warning')} warnings)")


def _request(args):
    """The matrix request of --target/--tp/--gpu, checked before the verification runs."""
    if not args.target:
        return None
    from awq_harness.conformance import runtimes
    from awq_harness.conformance.runtimes.matrix import MatrixRequest

    targets = tuple(runtimes.parse_target(t) for t in args.target.split(","))
    return MatrixRequest(targets, runtimes.parse_tps(args.tp), runtimes.parse_devices(args.gpu), args.require_target)


def run(args) -> int:
    from awq_harness.conformance import verify
    from awq_harness.conformance.html import render

    device = resolve_device(args.device)
    request = _request(args)
    report = verify(args.path, reference=args.reference, allow_pickle=args.allow_pickle, progress=args.progress,
                    device=device, cache=not args.no_cache, runtime=request)
    matrix_text = ""
    if report.runtime_matrix:
        from awq_harness.conformance.runtimes.render import text

        matrix_text = text(report.runtime_matrix)
    if args.json:
        _write(args.json, report.to_json() + "\n")
    if args.html:
        _write(args.html, render(report))
    if args.markdown:
        from awq_harness.conformance.markdown import render as markdown

        _write(args.markdown, markdown(report))
    _record(report)
    if matrix_text and not args.quiet:
        print(matrix_text)
    _print(report, args.quiet)
    sys.stdout.flush()
    return report.exit_code()
