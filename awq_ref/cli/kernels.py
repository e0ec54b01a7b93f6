"""``awq-harness kernels compile-check --arch sm_80,sm_86,sm_89,sm_90 [--subset] [--json FILE]``.

Compiles every Triton kernel configuration the dispatcher or autotuner can choose for each
architecture (``kernels.compile_check``; no GPU needed) and prints one line per compilation:
registers, spills, shared memory against the limit, tensor-core MMA. Exit 0 when every case
passes and the negative control is rejected, 1 otherwise. ``--json`` writes the results; with
``awq-harness --results-json`` they also become the report's compile-check section.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from awq_harness.awq_ref.errors import HarnessError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("kernels", help="checks of the Triton kernels (compile for real GPUs)",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kernels_command", required=True, metavar="CHECK")
    check = sub.add_parser("compile-check", help="compile every kernel configuration for GPU architectures")
    check.add_argument("--arch", default="sm_80,sm_86,sm_89,sm_90",
                       help="comma-separated architectures (default %(default)s)")
    check.add_argument("--subset", action="store_true",
                       help="only the default test run's representative subset (ignores --arch)")
    check.add_argument("--json", metavar="FILE", help="write the per-case results as JSON")
    check.set_defaults(func=run)


def _archs(text: str) -> tuple[str, ...]:
    from awq_harness.kernels.configs import ARCHS
    archs = tuple(a.strip() for a in text.split(",") if a.strip())
    unknown = [a for a in archs if a not in ARCHS]
    if not archs or unknown:
        raise HarnessError(f"--arch: unknown architecture(s) {unknown or text!r}; known: {', '.join(ARCHS)}")
    return archs


def run(args: argparse.Namespace) -> int:
    from awq_harness.kernels import compile_check
    from awq_harness.reports.collect import record

    found = compile_check.subset_cases() if args.subset else compile_check.cases(_archs(args.arch))
    print(f"compile-check: {len(found)} distinct compilations (+1 negative control)", flush=True)
    start = time.perf_counter()
    results = compile_check.run(found)
    seconds = time.perf_counter() - start
    print(compile_check.table(results))
    rows = compile_check.as_json(results)
    for row in rows:
        record("compile_check", row)
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"seconds": seconds, "results": rows}, indent=1), encoding="utf-8")
    failures = compile_check.verdict(results)
    for line in failures:
        print(f"FAIL {line}")
    print(f"compile-check: {sum(r.ok for r in results if not r.control)}/{len(results) - 1} passed, "
          f"control {'rejected' if not results[-1].ok else 'PASSED'}, {seconds:.1f} s")
    return 1 if failures else 0
