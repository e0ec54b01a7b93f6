"""Write a results file from a command-line run (no pytest): ``with recording_to(path): ...``.

A subcommand such as ``awq-harness eval --results-json PATH`` wraps its work in
``recording_to(PATH)``; every ``record(...)`` made inside lands in a results file with the
same schema and run metadata as the pytest plugin writes, ready for ``awq-harness report``.
Records gathered some other way (the kernel benchmark's session lists) are written with
``write_sections(path, sections)``, each entry checked as ``record`` checks it.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from awq_harness.reports.collect import Collector, check_record, collecting
from awq_harness.reports.metadata import run_metadata
from awq_harness.reports.schema import build_document, write_results


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
            write_sections(path, collector.sections, command, exitstatus, time.monotonic() - started)


def write_sections(path: str | Path, sections: dict[str, list[dict[str, Any]]], command: list[str] | None = None,
                   exitstatus: int = 0, duration_s: float | None = None) -> None:
    """Write ``sections`` (by name, as ``reports.collect`` names them) as a results file with this run's metadata."""
    checked = {name: [check_record(name, entry) for entry in entries] for name, entries in sections.items()}
    run = run_metadata(Path(__file__).resolve().parents[1])
    run.update(command=command if command is not None else sys.argv, exitstatus=exitstatus,
               duration_s=None if duration_s is None else round(duration_s, 3))
    write_results(path, build_document(run, [], checked))
