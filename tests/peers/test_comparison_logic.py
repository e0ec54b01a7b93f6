"""The peer comparison's arithmetic, on made-up runs (runs in the default suite, no peers needed)."""
from pathlib import Path

from tests.peers.awq_peers import PeerRun, Targets, comparison, missed_targets, table

FAST = "ours (fast)"


def rows_for(autoawq_s, llmc_s, ours_s, ppls):
    runs = [PeerRun("autoawq", "bfloat16", autoawq_s, Path()), PeerRun("llm-compressor", "bfloat16", llmc_s, Path()),
            PeerRun(FAST, "bfloat16", ours_s, Path())]
    return comparison(runs, dict(zip(["autoawq", "llm-compressor", FAST], ppls)), FAST)


def test_ratios_are_relative_to_ours():
    rows = rows_for(60.0, 30.0, 10.0, [8.2, 8.21, 8.19])
    assert [r["x_ours"] for r in rows] == [6.0, 3.0, 1.0]
    assert "llm-compressor" in table(rows).splitlines()[2]


def test_all_targets_met_means_no_complaint():
    assert missed_targets(rows_for(60.0, 30.0, 10.0, [8.2, 8.21, 8.2]), FAST) == []


def test_each_missed_target_is_named():
    slow = missed_targets(rows_for(40.0, 30.0, 10.0, [8.2, 8.2, 8.2]), FAST)
    assert len(slow) == 1 and "autoawq" in slow[0] and "4.00x" in slow[0]
    worse = missed_targets(rows_for(60.0, 30.0, 10.0, [8.2, 8.3, 8.25]), FAST)
    assert len(worse) == 1 and "autoawq" in worse[0] and "perplexity" in worse[0]  # 8.25 > 8.2 x 1.005
    assert len(missed_targets(rows_for(60.0, 30.0, 10.0, [8.2, 8.3, 8.25]), FAST, Targets(ppl_slack=1.01))) == 0
