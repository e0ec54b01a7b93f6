"""reports.plugin: --results-json in real pytest runs (subprocesses in a scratch project)."""
import json
import textwrap
from pathlib import Path

from report_helpers import run_pytest as run_scratch

from awq_harness.reports.schema import load_results

SAMPLE_TESTS = textwrap.dedent('''
    import pytest
    from awq_harness.reports.collect import record

    @pytest.mark.parametrize("batch", [1, 4, 16])
    def test_speed(batch):
        record("kernel_speedups", {"kernel": "gemv", "shape": "s", "batch": batch,
                                   "speedup": 3.0, "bound": 3.85})

    def test_fails_after_recording():
        record("perplexity", {"model": "m", "method": "awq", "bits": 4, "group_size": 64, "ppl": 9.5})
        assert False, "deliberate"

    def test_skipped():
        pytest.skip("not here")

    @pytest.mark.xfail(reason="known")
    def test_xfail():
        assert False

    @pytest.fixture
    def broken():
        raise RuntimeError("setup breaks")

    def test_setup_error(broken):
        pass

    def test_benchmarked(benchmark):
        benchmark.pedantic(sum, args=(range(100),), rounds=5, iterations=1)

    def test_child_process_records():
        import subprocess, sys
        child = ("from awq_harness.reports.collect import record; record('findings', {'checkpoint': 'ckpt', "
                 "'rule': 'FROM-CHILD', 'severity': 'error', 'message': 'made in a subprocess'})")
        subprocess.run([sys.executable, "-c", child], check=True)
''')


def run_pytest(project: Path, *args: str):
    return run_scratch(project, SAMPLE_TESTS, *args)


def outcomes(results) -> dict[str, str]:
    return {test["nodeid"].split("::")[-1]: test["outcome"] for test in results.tests}


EXPECTED_OUTCOMES = {"test_speed[1]": "passed", "test_speed[4]": "passed", "test_speed[16]": "passed",
                     "test_fails_after_recording": "failed", "test_skipped": "skipped",
                     "test_xfail": "xfailed", "test_setup_error": "error", "test_benchmarked": "passed",
                     "test_child_process_records": "passed"}


def test_failing_run_still_writes_a_valid_results_file(tmp_path):
    done = run_pytest(tmp_path, "--results-json", "out/results.json")
    assert done.returncode == 1, done.stdout + done.stderr
    results = load_results(tmp_path / "out" / "results.json")
    assert outcomes(results) == EXPECTED_OUTCOMES
    assert sorted(r["batch"] for r in results.sections["kernel_speedups"]) == [1, 4, 16]
    assert results.sections["perplexity"][0]["test"].endswith("test_fails_after_recording")
    assert results.run["exitstatus"] == 1
    assert [f["rule"] for f in results.sections["findings"]] == ["FROM-CHILD"]
    assert {"torch", "triton", "transformers", "cuda", "python"} <= set(results.run["versions"])


def test_benchmark_stats_are_recorded(tmp_path):
    run_pytest(tmp_path, "--results-json", "r.json")
    (bench,) = load_results(tmp_path / "r.json").sections["benchmarks"]
    assert bench["name"].endswith("test_benchmarked") and bench["rounds"] == 5
    assert 0 < bench["min"] <= bench["median"] <= bench["max"]


def test_without_the_option_nothing_is_written(tmp_path):
    run_pytest(tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def test_xdist_workers_merge_into_one_file(tmp_path):
    done = run_pytest(tmp_path, "-n", "2", "--results-json", "r.json")
    assert "bringing up nodes" in done.stdout, done.stdout + done.stderr
    results = load_results(tmp_path / "r.json")
    assert outcomes(results) == EXPECTED_OUTCOMES
    assert sorted(r["batch"] for r in results.sections["kernel_speedups"]) == [1, 4, 16]
    assert len(results.sections["perplexity"]) == 1
    assert [f["rule"] for f in results.sections["findings"]] == ["FROM-CHILD"]
    assert not list(tmp_path.glob(".r.json.*")), "no stray temporary files"
    json.loads((tmp_path / "r.json").read_text())


def test_unwritable_path_is_a_usage_error_before_tests_run(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    done = run_pytest(tmp_path, "--results-json", "taken/r.json")
    assert done.returncode == 4  # pytest's usage error
    assert "--results-json" in done.stderr and "cannot create its folder" in done.stderr
    assert "passed" not in done.stdout
