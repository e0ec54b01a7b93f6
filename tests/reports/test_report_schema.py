"""reports.schema: saved results load back; malformed files fail with one clear line."""
import json

import pytest
from report_samples import good_run

from awq_harness.reports.schema import SCHEMA_VERSION, ResultsError, load_results, write_results


def test_written_document_loads_back(tmp_path):
    write_results(tmp_path / "deep" / "r.json", good_run())
    results = load_results(tmp_path / "deep" / "r.json")
    assert results.run["device"] == "NVIDIA A10"
    assert len(results.sections["kernel_speedups"]) == 72
    assert results.outcome_counts()["passed"] == 8
    assert results.label == "2026-11-22 02:00 a1b2c3d4e5"


def _broken(mutate):
    doc = good_run()
    mutate(doc)
    return json.dumps(doc)


CASES = [
    ("not json", "{\"schema\": ", "not valid JSON (Expecting value at line 1 column 12)"),
    ("array", "[]", "the top level must be a JSON object"),
    ("schema name", _broken(lambda d: d.update(schema="other")), '"schema" must be "awq-harness-results"'),
    ("version type", _broken(lambda d: d.update(schema_version="1")), '"schema_version" must be a positive integer'),
    ("future version", _broken(lambda d: d.update(schema_version=SCHEMA_VERSION + 1)),
     f'"schema_version" {SCHEMA_VERSION + 1} is newer than this harness reads'),
    ("run key", _broken(lambda d: d["run"].pop("device")), '"run" lacks required key(s) device'),
    ("outcome", _broken(lambda d: d["tests"][2].update(outcome="great")), '"tests[2]".outcome must be one of'),
    ("section name", _broken(lambda d: d["sections"].update(speed=[])), 'unknown section(s) speed in "sections"'),
    ("entry key", _broken(lambda d: d["sections"]["perplexity"][3].pop("ppl")),
     '"sections.perplexity[3]" lacks required key(s) ppl'),
    ("entry type", _broken(lambda d: d["sections"]["kernel_speedups"][5].update(speedup="fast")),
     "\"sections.kernel_speedups[5]\".speedup must be a number, got 'fast'"),
    ("bool is no number", _broken(lambda d: d["sections"]["layer_errors"][0].update(rel_error=True)),
     '"sections.layer_errors[0]".rel_error must be a number'),
]


@pytest.mark.parametrize("text, rule", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_file_names_file_and_rule_in_one_line(tmp_path, text, rule):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ResultsError) as err:
        load_results(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and rule in message and "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "absent.json")


def test_nan_and_infinite_perplexity_are_valid_results(tmp_path):
    doc = good_run()
    doc["sections"]["perplexity"][1]["ppl"] = float("nan")
    doc["sections"]["perplexity"][2]["ppl"] = float("inf")
    write_results(tmp_path / "r.json", doc)
    assert load_results(tmp_path / "r.json").sections["perplexity"][2]["ppl"] == float("inf")
