"""Rebuild the golden checkpoints, or with ``--check`` only compare a rebuild against them.

    golden/regenerate [--check | --out DIR] [NAME ...]

A change to a golden needs this explicit step, and shows up in ``git diff``. Every run
restarts itself under the pinned numerics of ``awq_ref.primitives.reproducible`` (the same kernels on
every x86-64 CPU), so a rebuild here gives the bytes a rebuild on any other CPU gives.
``--out DIR`` writes the rebuilds into DIR (one folder per golden) for a caller to compare.
Exit code: 0 all match (or rebuilt), 1 drift found by --check.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from awq_harness.awq_ref.primitives import reproducible
from awq_harness.golden.build import build, golden_dir
from awq_harness.golden.manifest import file_drift, numerics_drift, tensor_drift
from awq_harness.golden.specs import BY_NAME, GOLDENS


def compare(name: str, rebuilt: Path) -> list[str]:
    """Every difference between the committed golden ``name`` and the folder ``rebuilt``."""
    golden = golden_dir(name)
    return tensor_drift(golden, rebuilt) + file_drift(golden, rebuilt) + numerics_drift(golden, rebuilt)


def drift(name: str) -> list[str]:
    """Rebuild ``name`` in a temporary folder and describe every difference from the committed one."""
    with tempfile.TemporaryDirectory() as tmp:
        return compare(name, build(BY_NAME[name], Path(tmp) / name))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="golden/regenerate", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare only; write nothing")
    mode.add_argument("--out", type=Path, help="write the rebuilds into this folder instead")
    parser.add_argument("names", nargs="*", help="goldens to process (default: all)")
    return parser


def _process(name: str, args) -> bool:
    """Handle one golden; True when --check found drift."""
    if args.check:
        lines = drift(name)
        print(f"{name}: {'DRIFT' if lines else 'ok'}" + "".join(f"\n  {line}" for line in lines))
        return bool(lines)
    out = args.out / name if args.out else golden_dir(name)
    build(BY_NAME[name], out, overwrite=True)
    print(f"{name}: rebuilt -> {out}")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown golden(s) {unknown}; known: {sorted(BY_NAME)}")
    reproducible.rerun_pinned()
    print("numerics pinned:", " ".join(f"{k}={v}" for k, v in reproducible.PIN.items()),
          f"(torch ATen kernels: {reproducible.ATEN_PINNED_CAPABILITY})")
    failed = sum(_process(name, args) for name in args.names or [spec.name for spec in GOLDENS])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
