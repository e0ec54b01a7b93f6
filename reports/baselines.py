"""Per-GPU baselines: ordinary results files (``reports.schema``) kept as ``baselines/<slug>.json``.

One file per GPU model, named by ``reports.metadata.device_slug`` (``NVIDIA A10`` ->
``baselines/nvidia-a10.json``). The report compares a run with it (``reports.compare``: the
same rules for kernel speed-ups, perplexity, findings and tests), and the GPU kernel benchmark
judges each speed-up against its ``kernel_speedups`` section by the same two-sided band.

A baseline changes only on purpose, then its diff is reviewed and committed:

    pytest tests/kernels -m gpu --kernel-baseline-write   # this GPU's kernel_speedups section
    python -m awq_harness.reports.baselines pin results/results.json  # a whole run's results

The CI workflow names the GPU and finds its file with the same code:

    python -m awq_harness.reports.baselines slug "NVIDIA A10"         # nvidia-a10
    python -m awq_harness.reports.baselines path "NVIDIA A10"         # baselines/nvidia-a10.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from awq_harness.reports.collect import check_record
from awq_harness.reports.metadata import device_slug, run_metadata
from awq_harness.reports.schema import Results, ResultsError, build_document, load_results, write_results

REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_DIR = REPO_ROOT / "baselines"


def baseline_path(device: str, directory: str | Path = BASELINE_DIR) -> Path:
    return Path(directory) / f"{device_slug(device)}.json"


def load_baseline(device: str, directory: str | Path = BASELINE_DIR) -> Results | None:
    """This GPU model's baseline, or None when it has none (a broken file raises ResultsError)."""
    path = baseline_path(device, directory)
    return load_results(path) if path.is_file() else None


def write_section(device: str, section: str, entries: list[dict[str, Any]],
                  directory: str | Path = BASELINE_DIR) -> Path:
    """Replace one section of this GPU's baseline, keeping the others; a new file gets this
    run's metadata. Each entry is checked as ``reports.collect.record`` checks it."""
    path = baseline_path(device, directory)
    if path.is_file():
        load_results(path)  # refuse to rewrite a file that is not a valid results file
        document = json.loads(path.read_text(encoding="utf-8"))
    else:
        document = build_document(run_metadata(REPO_ROOT), [], {})
    document["run"]["device"] = device
    document["sections"][section] = [check_record(section, entry) for entry in entries]
    write_results(path, document)
    return path


def pin(results_path: str | Path, device: str | None = None, directory: str | Path = BASELINE_DIR) -> Path:
    """Copy a run's results file to the baseline of the GPU it ran on (or of ``device``)."""
    results = load_results(results_path)
    target = baseline_path(device or str(results.run["device"]), directory)
    document = json.loads(Path(results_path).read_text(encoding="utf-8"))
    write_results(target, document)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m awq_harness.reports.baselines", description=__doc__.splitlines()[0])  # noqa: E501 - the awq_harness prefix
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("slug", help="print the slug of a GPU name").add_argument("device")
    commands.add_parser("path", help="print where that GPU's baseline lives").add_argument("device")
    pinning = commands.add_parser("pin", help="copy a results file to its GPU's baseline")
    pinning.add_argument("results")
    pinning.add_argument("--device", help="GPU name to file it under (default: the run's own)")
    args = parser.parse_args(argv)
    try:
        if args.command == "slug":
            print(device_slug(args.device))
        elif args.command == "path":
            print(baseline_path(args.device).relative_to(REPO_ROOT).as_posix())
        else:
            print(pin(args.results, args.device))
    except (ValueError, ResultsError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
