"""reports.collect: the API the rest of the harness calls."""
import math

import pytest
import torch

from awq_harness.reports import collect
from awq_harness.reports.collect import SECTIONS, SPOOL_ENV, check_record, collecting, read_spool, record


@pytest.fixture(autouse=True)
def no_outer_collector():
    """These tests may run inside a session that collects (pytest --results-json)."""
    outer = collect.active_collector()
    collect.deactivate()
    yield
    if outer is not None:
        collect.activate(outer)


SPEEDUP = {"kernel": "gemv", "shape": "llama2-7b.q_proj", "batch": 1, "speedup": 3.1, "bound": 3.85}


def test_record_without_collector_stores_nothing(monkeypatch):
    monkeypatch.delenv(SPOOL_ENV, raising=False)
    assert collect.active_collector() is None
    record("kernel_speedups", SPEEDUP)
    assert collect.active_collector() is None


def test_record_inside_collecting_keeps_payload_in_its_section():
    with collecting() as collector:
        record("kernel_speedups", SPEEDUP)
        record("findings", {"checkpoint": "c", "rule": "R1", "severity": "error", "message": "m"})
    assert collector.sections["kernel_speedups"] == [SPEEDUP]
    assert [f["rule"] for f in collector.sections["findings"]] == ["R1"]
    assert collect.active_collector() is None


def test_every_documented_section_exists():
    assert set(SECTIONS) == {"kernel_speedups", "perplexity", "calibration_curve", "layer_errors",
                             "findings", "sensitivity", "benchmarks", "decode_speed", "compile_check", "quality",
                             "claims", "runtime_matrix"}


def test_current_test_is_attached_to_records():
    with collecting() as collector:
        collector.current_test = "tests/x.py::test_y"
        record("benchmarks", {"name": "b"})
    assert collector.sections["benchmarks"][0]["test"] == "tests/x.py::test_y"


def test_torch_scalars_become_plain_floats():
    payload = dict(SPEEDUP, speedup=torch.tensor(2.5), time_ms=torch.tensor([1.0, 2.0]))
    clean = check_record("kernel_speedups", payload)
    assert clean["speedup"] == 2.5 and type(clean["speedup"]) is float
    assert clean["time_ms"] == [1.0, 2.0]


def test_nan_perplexity_is_kept():
    clean = check_record("perplexity", {"model": "m", "method": "awq", "bits": 4, "group_size": 64,
                                        "ppl": float("nan")})
    assert math.isnan(clean["ppl"])


@pytest.mark.parametrize("section, payload, words", [
    ("speedups", SPEEDUP, "unknown results section 'speedups'"),
    ("kernel_speedups", [1, 2], "payload must be a dict"),
    ("kernel_speedups", {"kernel": "gemv"}, "lacks required key(s) shape, batch, speedup, bound"),
    ("benchmarks", {"name": "b", "obj": object()}, "not JSON data"),
])
def test_wrong_calls_fail_even_without_collector(section, payload, words):
    with pytest.raises(ValueError) as err:
        record(section, payload)
    assert words in str(err.value)


def test_without_collector_records_go_to_the_spool_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(SPOOL_ENV, str(tmp_path))
    record("kernel_speedups", SPEEDUP)
    with (tmp_path / "records-99.jsonl").open("a") as other_process:
        other_process.write('{"section": "benchmarks", "payload": {"name": "b"}}\n{"section": "find')
    spooled = read_spool(tmp_path)
    assert spooled["kernel_speedups"] == [SPEEDUP]
    assert spooled["benchmarks"] == [{"name": "b"}]


def test_an_active_collector_wins_over_the_spool(tmp_path, monkeypatch):
    monkeypatch.setenv(SPOOL_ENV, str(tmp_path))
    with collecting() as collector:
        record("kernel_speedups", SPEEDUP)
    assert collector.sections["kernel_speedups"] == [SPEEDUP] and not list(tmp_path.iterdir())
