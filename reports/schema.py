"""The results file: a versioned JSON document, written by the plugin, read by the report.

Layout (``schema_version`` 1)::

    {
      "schema": "awq-harness-results",
      "schema_version": 1,
      "run": {"date", "git_commit", "git_dirty", "host", "device", "versions": {...},
              "pytest_args", "exitstatus", "duration_s"},
      "tests": [{"nodeid", "outcome", "duration_s"}, ...],
      "sections": {"kernel_speedups": [...], "perplexity": [...], ...}   # see reports.collect
    }

``load_results`` checks every rule and stops at the first broken one with a single-line
``ResultsError`` that names the file and the rule.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awq_harness.reports.collect import REQUIRED_KEYS, SECTIONS

SCHEMA_NAME = "awq-harness-results"
SCHEMA_VERSION = 1
RUN_REQUIRED_KEYS = ("date", "git_commit", "host", "device", "versions")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
NUMERIC_KEYS: dict[str, tuple[str, ...]] = {
    "kernel_speedups": ("batch", "speedup", "bound"),
    "perplexity": ("bits", "ppl"),
    "calibration_curve": ("n_samples", "ppl"),
    "layer_errors": ("rel_error",),
    "findings": (),
    "sensitivity": ("score",),
    "benchmarks": (),
    "decode_speed": ("speedup",),
    "compile_check": (),
    "quality": ("bits", "ppl", "kld_mean", "top1_agreement"),
    "claims": ("value",),
    "runtime_matrix": ("tp",),
}


class ResultsError(Exception):
    """A results file is missing, not JSON, or breaks a schema rule (message names both).

    The console script prints it as one line, like the harness's own errors."""


@dataclass(frozen=True)
class Results:
    path: str
    run: dict[str, Any]
    tests: list[dict[str, Any]]
    sections: dict[str, list[dict[str, Any]]]

    @property
    def label(self) -> str:
        commit = str(self.run.get("git_commit") or "unknown")[:10]
        return f"{str(self.run['date'])[:16].replace('T', ' ')} {commit}"

    @property
    def short_label(self) -> str:
        """'11-22 a1b2c3d' for axis ticks."""
        return f"{str(self.run['date'])[5:10]} {str(self.run.get('git_commit') or '?')[:7]}"

    def outcome_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for test in self.tests:
            counts[test["outcome"]] += 1
        return counts


def build_document(run: dict[str, Any], tests: list[dict[str, Any]],
                   sections: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "run": run,
            "tests": tests, "sections": {name: sections.get(name, []) for name in SECTIONS}}


def write_results(path: str | os.PathLike, document: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a file, even if the run is killed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def load_results(path: str | os.PathLike) -> Results:
    document = _read_json(Path(path))
    try:
        _check_document(document)
    except _RuleBroken as rule:
        raise ResultsError(f"{path}: {rule}") from None
    return Results(str(path), document["run"], document["tests"], _sections_of(document))


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path}: cannot be read ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None


class _RuleBroken(Exception):
    pass


def _require(condition: bool, rule: str) -> None:
    if not condition:
        raise _RuleBroken(rule)


def _check_document(doc: Any) -> None:
    _require(isinstance(doc, dict), "the top level must be a JSON object")
    _require(doc.get("schema") == SCHEMA_NAME, f'"schema" must be "{SCHEMA_NAME}"')
    version = doc.get("schema_version")
    _require(isinstance(version, int) and not isinstance(version, bool) and version >= 1,
             '"schema_version" must be a positive integer')
    _require(version <= SCHEMA_VERSION,
             f'"schema_version" {version} is newer than this harness reads ({SCHEMA_VERSION}); upgrade awq-harness')
    _check_run(doc.get("run"))
    _check_tests(doc.get("tests"))
    _check_sections(doc.get("sections"))


def _check_run(run: Any) -> None:
    _require(isinstance(run, dict), '"run" must be an object')
    missing = [key for key in RUN_REQUIRED_KEYS if key not in run]
    _require(not missing, f'"run" lacks required key(s) {", ".join(missing)}')
    _require(isinstance(run["versions"], dict), '"run.versions" must be an object')


def _check_tests(tests: Any) -> None:
    _require(isinstance(tests, list), '"tests" must be a list')
    for index, test in enumerate(tests):
        where = f'"tests[{index}]"'
        _require(isinstance(test, dict) and isinstance(test.get("nodeid"), str),
                 f"{where} must be an object with a string nodeid")
        _require(test.get("outcome") in OUTCOMES, f"{where}.outcome must be one of {', '.join(OUTCOMES)}")


def _check_sections(sections: Any) -> None:
    _require(isinstance(sections, dict), '"sections" must be an object')
    unknown = sorted(set(sections) - set(SECTIONS))
    _require(not unknown, f'unknown section(s) {", ".join(unknown)} in "sections"')
    for name, entries in sections.items():
        _require(isinstance(entries, list), f'"sections.{name}" must be a list')
        for index, entry in enumerate(entries):
            _check_entry(name, index, entry)


def _check_entry(section: str, index: int, entry: Any) -> None:
    where = f'"sections.{section}[{index}]"'
    _require(isinstance(entry, dict), f"{where} must be an object")
    missing = [key for key in REQUIRED_KEYS[section] if key not in entry]
    _require(not missing, f"{where} lacks required key(s) {', '.join(missing)}")
    for key in NUMERIC_KEYS[section]:
        _require(_is_number(entry[key]), f"{where}.{key} must be a number, got {entry[key]!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sections_of(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {name: list(doc["sections"].get(name, [])) for name in SECTIONS}
