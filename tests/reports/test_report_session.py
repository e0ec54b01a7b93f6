"""reports.session.recording_to: results files from command-line runs."""
import pytest

from awq_harness.reports.collect import record
from awq_harness.reports.schema import load_results
from awq_harness.reports.session import recording_to

PPL = {"model": "default", "method": "rtn", "bits": 4, "group_size": 64, "ppl": 21.5}


def test_records_inside_the_block_are_written(tmp_path):
    with recording_to(tmp_path / "r.json", command=["awq-harness", "eval"]):
        record("perplexity", PPL)
    results = load_results(tmp_path / "r.json")
    assert results.sections["perplexity"] == [PPL]
    assert results.run["command"] == ["awq-harness", "eval"] and results.run["exitstatus"] == 0


def test_file_is_written_when_the_command_fails(tmp_path):
    with pytest.raises(RuntimeError), recording_to(tmp_path / "r.json"):
        record("perplexity", PPL)
        raise RuntimeError("model exploded")
    results = load_results(tmp_path / "r.json")
    assert results.run["exitstatus"] == 1 and len(results.sections["perplexity"]) == 1
