"""``eval --metrics ppl,kld,top1 --domain``: rows gain KL divergence, top-1 and intervals; the float
model's distributions are computed once and read back by later evaluations."""
import json

import pytest

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model

KEYS = ("kld_mean", "kld_median", "kld_p99", "kld_p999", "kld_max", "top1_agreement")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama", seed=3)


def run_eval(tiny, out, *extra):
    argv = ["eval", "--model", str(tiny), "--methods", "rtn", "--w-bit", "4,2", "--group-size", "32",
            "--windows", "3", "--seqlen", "64", "--dtype", "float32", "--json", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_eval_rows_gain_kl_top1_and_intervals(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path / "cache"))
    doc = run_eval(tiny, tmp_path / "a.json", "--metrics", "ppl,kld,top1", "--domain", "pydoc")
    fp, w4, w2 = doc["rows"]
    assert doc["settings"]["domain"] == "pydoc" and doc["settings"]["metrics"] == ["ppl", "kld", "top1"]
    for row in (fp, w4, w2):
        assert all(k in row for k in KEYS) and row["bootstrap"]["resamples"] == 1000
        for name, (low, high) in row["ci"].items():
            assert low <= row[name if name != "ppl" else "ppl"] <= high
    assert fp["top1_agreement"] == 1 and abs(fp["kld_mean"]) < 1e-3
    assert 0 < w4["kld_mean"] < w2["kld_mean"] and w2["top1_agreement"] < w4["top1_agreement"] <= 1
    assert len(list((tmp_path / "cache" / "float-logits").glob("*.safetensors"))) == 1
    again = run_eval(tiny, tmp_path / "b.json", "--metrics", "kld", "--domain", "pydoc")
    assert again["rows"][1]["kld_mean"] == w4["kld_mean"]  # the cached reference, not a new one
    assert len(list((tmp_path / "cache" / "float-logits").glob("*.safetensors"))) == 1


def test_plain_eval_keeps_its_perplexity_and_adds_only_its_interval(tiny, tmp_path):
    doc = run_eval(tiny, tmp_path / "c.json")
    assert all("kld_mean" not in row and "ppl" in row["ci"] for row in doc["rows"])


def test_unknown_metric_is_refused_by_the_parser(tiny, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--model", str(tiny), "--metrics", "ppl,bleu"])
    assert "unknown metric(s) bleu" in capsys.readouterr().err


def test_cloze_accuracy_per_row_and_quality_rows_in_the_results_file(tiny, tmp_path, monkeypatch):
    """``--cloze N`` scores every row on N passages (lm-eval's accuracy = our own greedy count), and
    ``--results-json`` gets one quality row per evaluated row, each with its own comparison key."""
    pytest.importorskip("lm_eval")
    from awq_harness.awq_ref.data.models import load_model, load_tokenizer
    from awq_harness.awq_ref.eval.lm_eval_task import cloze_passages
    from awq_harness.reports.compare import QUALITY_KEY, key_of
    from tests.awq_ref.eval.test_cloze import greedy_hits

    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "results.json"
    argv = ["--results-json", str(results), "eval", "--model", str(tiny), "--methods", "rtn", "--w-bit", "4,2",
            "--group-size", "32", "--windows", "3", "--seqlen", "64", "--dtype", "float32", "--metrics", "ppl,kld",
            "--cloze", "6", "--json", str(tmp_path / "rows.json")]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    passages = cloze_passages("austen", 6)
    hits = greedy_hits(load_model(tiny), load_tokenizer(tiny), passages)
    assert rows[0]["cloze"]["accuracy"] == pytest.approx(hits / 6) and rows[0]["cloze"]["passages"] == 6
    for row in rows:
        low, high = row["cloze"]["accuracy_ci"]
        assert 0 <= low <= row["cloze"]["accuracy"] <= high <= 1
    quality = json.loads(results.read_text())["sections"]["quality"]
    assert [q["label"] for q in quality] == [r["label"] for r in rows]
    assert len({key_of(q, QUALITY_KEY) for q in quality}) == len(rows)
    assert all(q["kld_mean"] == r["kld_mean"] and q["cloze_accuracy"] == r["cloze"]["accuracy"]
               for q, r in zip(quality, rows, strict=True))


def test_a_negative_cloze_count_or_cloze_with_lm_eval_is_one_clear_error(tiny, capsys):
    assert main(["eval", "--model", str(tiny), "--cloze", "-1"]) == 2
    assert "--cloze takes a number of passages" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny), "--cloze", "5", "--lm-eval"]) == 2
    assert "without --lm-eval" in capsys.readouterr().err
