"""Write a results file from a command-line run (no pytest): ``with recording_to(path): ...``.

A subcommand such as ``awq-harness eval --results-json PATH`` wraps its work in
``recording_to(PATH)``; every ``record(...)`` made inside lands in a results file with the
same schema and run metadata as the pytest plugin writes, ready for ``awq-harness report``.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from reports.collect import Collector, collecting
from reports.metadata import run_metadata
from reports.schema import build_document, write_results


@contextmanager
def recording_to(path: str | Path, command: list[str] | None = None) -> Iterator[Collector]:
    """Collect records made in the block and write them to ``path``, also if it raises."""
    started = time.monotonic()
    exitstatus = 1
    with collecting() as collector:
        try:
            yield collector
            exitstatus = 0
        finally:
            run = run_metadata(Path(__file__).resolve().parents[1])
            run.update(command=command if command is not None else sys.argv, exitstatus=exitstatus,
                       duration_s=round(time.monotonic() - started, 3))
            write_results(path, build_document(run, [], collector.sections))
