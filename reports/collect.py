"""Record results for the regression report from anywhere in the harness.

Library and test code calls ``record(section, payload)`` unconditionally. When no
collector is active (a plain run without ``--results-json``) the call only checks its
arguments and stores nothing; when the pytest plugin (``reports.plugin``) or a caller has
activated a ``Collector``, the payload is stored in that section and written to the
results JSON at the end of the run.

Sections and the keys each payload must carry (other keys are kept as given)::

    kernel_speedups    kernel, shape, batch, speedup, bound
                       (optional: group_size, time_ms, ref_time_ms, gbps, tflops, dry_run)
    perplexity         model, method, bits, group_size, ppl   (optional: evaluator, dataset)
    calibration_curve  model, method, n_samples, ppl          (optional: bits, group_size, seqlen)
    layer_errors       model, layer, rel_error                (optional: sqnr_db, mode)
    findings           checkpoint, rule, severity, message    (optional: file, tensor)
    sensitivity        model, layer, score                    (optional: rank, metric, group)
    benchmarks         name                                   (optional: mean, median, min, max,
                                                               stddev, rounds, unit)
    decode_speed       model, speedup                         (optional: tokens_per_s,
                                                               fp16_tokens_per_s, new_tokens, ...)
    compile_check      arch, kernel, dtype, ok                (optional: config, registers, spill_bytes,
                                                               shared_bytes, shared_limit, mma, errors)
    quality            model, method, bits, ppl, kld_mean, top1_agreement
                       (optional: settings, eval_domain, calib_domain, calib_samples, kld_median,
                        kld_p99, kld_p999, kld_max, <statistic>_ci)
    claims             model, settings, claim, comparison, value, verdict
                       (optional: statistic, ci_low, ci_high)
    runtime_matrix     checkpoint, target, layer, tp, device, verdict
                       (optional: version, kernel, rule, source, why, checked)

Values are turned into plain JSON types when recorded (numpy / torch scalars become
floats), so a payload can never break the results file later.

Child processes (a test that runs ``awq-harness eval`` in a subprocess, say) have no
collector of their own; when ``AWQ_HARNESS_RESULTS_SPOOL`` names a folder, which the plugin
sets for the whole run, their records are appended there as JSON lines and merged into the
results file at the end. This module depends on the standard library only.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kernel_speedups": ("kernel", "shape", "batch", "speedup", "bound"),
    "perplexity": ("model", "method", "bits", "group_size", "ppl"),
    "calibration_curve": ("model", "method", "n_samples", "ppl"),
    "layer_errors": ("model", "layer", "rel_error"),
    "findings": ("checkpoint", "rule", "severity", "message"),
    "sensitivity": ("model", "layer", "score"),
    "benchmarks": ("name",),
    "decode_speed": ("model", "speedup"),
    "compile_check": ("arch", "kernel", "dtype", "ok"),
    "quality": ("model", "method", "bits", "ppl", "kld_mean", "top1_agreement"),
    "claims": ("model", "settings", "claim", "comparison", "value", "verdict"),
    "runtime_matrix": ("checkpoint", "target", "layer", "tp", "device", "verdict"),
}
SECTIONS: tuple[str, ...] = tuple(REQUIRED_KEYS)
SPOOL_ENV = "AWQ_HARNESS_RESULTS_SPOOL"

_lock = threading.Lock()
_active: "Collector | None" = None


class Collector:
    """Holds the records of one run, section by section, in the order they arrived."""

    def __init__(self) -> None:
        self.sections: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS}
        self.current_test: str | None = None

    def add(self, section: str, payload: dict[str, Any]) -> None:
        entry = dict(payload)
        if self.current_test and "test" not in entry:
            entry["test"] = self.current_test
        with _lock:
            self.sections[section].append(entry)

    def extend(self, sections: dict[str, list[dict[str, Any]]]) -> None:
        """Merge records gathered elsewhere (an xdist worker) into this collector."""
        with _lock:
            for name, entries in sections.items():
                self.sections.setdefault(name, []).extend(entries)


def record(section: str, payload: dict[str, Any]) -> None:
    """Store ``payload`` under ``section`` in the active collector, if there is one.

    Raises ValueError for an unknown section, a payload that is not a dict, a missing
    required key, or a value that cannot be written as JSON, whether a collector is
    active or not, so a wrong call fails in every run rather than only in CI.
    """
    clean = check_record(section, payload)
    collector = _active
    if collector is not None:
        collector.add(section, clean)
    elif os.environ.get(SPOOL_ENV):
        _append_to_spool(Path(os.environ[SPOOL_ENV]), section, clean)


def _append_to_spool(folder: Path, section: str, payload: dict[str, Any]) -> None:
    line = json.dumps({"section": section, "payload": payload}) + "\n"
    with _lock, open(folder / f"records-{os.getpid()}.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line)


def read_spool(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The records child processes appended to ``folder``, by section (bad lines skipped)."""
    sections: dict[str, list[dict[str, Any]]] = {name: [] for name in SECTIONS}
    for path in sorted(folder.glob("records-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                sections[entry["section"]].append(entry["payload"])
            except (ValueError, KeyError, TypeError):
                continue  # a child killed mid-write leaves at most one partial last line
    return sections


def check_record(section: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Return ``payload`` as plain JSON data, or raise ValueError saying what is wrong."""
    if section not in REQUIRED_KEYS:
        raise ValueError(f"unknown results section {section!r}; expected one of {', '.join(SECTIONS)}")
    if not isinstance(payload, dict):
        raise ValueError(f"results section {section!r}: payload must be a dict, got {type(payload).__name__}")
    missing = [key for key in REQUIRED_KEYS[section] if key not in payload]
    if missing:
        raise ValueError(f"results section {section!r}: payload lacks required key(s) {', '.join(missing)}")
    try:
        return json.loads(json.dumps(payload, default=_plain_value, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise ValueError(f"results section {section!r}: payload is not JSON data: {err}") from None


def _plain_value(value: Any) -> Any:
    """Turn numpy / torch scalars and arrays into JSON types; refuse anything else."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be written as JSON")


def active_collector() -> Collector | None:
    return _active


def activate(collector: Collector) -> None:
    global _active
    _active = collector


def deactivate() -> None:
    global _active
    _active = None


@contextmanager
def collecting() -> Iterator[Collector]:
    """Collect records made inside the ``with`` block (restores the previous collector)."""
    global _active
    previous, _active = _active, Collector()
    try:
        yield _active
    finally:
        _active = previous
