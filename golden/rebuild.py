"""Rebuild the golden checkpoints, or with ``--check`` only compare a rebuild against them.

    golden/regenerate [--check] [NAME ...]

A change to a golden needs this explicit step, and shows up in ``git diff``.
Exit code: 0 all match (or rebuilt), 1 drift found by --check.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from golden.build import build, golden_dir
from golden.manifest import file_drift, tensor_drift
from golden.specs import BY_NAME, GOLDENS


def drift(name: str) -> list[str]:
    """Rebuild ``name`` in a temporary folder and describe every difference from the committed one."""
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = build(BY_NAME[name], Path(tmp) / name)
        return tensor_drift(golden_dir(name), rebuilt) + file_drift(golden_dir(name), rebuilt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="golden/regenerate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    parser.add_argument("names", nargs="*", help="goldens to process (default: all)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown golden(s) {unknown}; known: {sorted(BY_NAME)}")
    names = args.names or [spec.name for spec in GOLDENS]
    failed = 0
    for name in names:
        if args.check:
            lines = drift(name)
            failed += bool(lines)
            print(f"{name}: {'DRIFT' if lines else 'ok'}" + "".join(f"\n  {line}" for line in lines))
        else:
            build(BY_NAME[name], golden_dir(name), overwrite=True)
            print(f"{name}: rebuilt")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
