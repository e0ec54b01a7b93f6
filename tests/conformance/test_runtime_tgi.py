"""The TGI profile (verify --target tgi): each rule on shapes chosen to sit on either side of it,
and the matrix of a committed golden through the CLI."""
from __future__ import annotations

import json

import pytest

from awq_harness import golden
from awq_harness.awq_ref.cli import main
from awq_harness.conformance.runtimes import parse_target, tgi, vllm
from awq_harness.conformance.runtimes.shapes import Model, Part, Row, partition

QKV = (("q_proj", 256), ("k_proj", 128), ("v_proj", 128))
GQA = Model(heads=4, kv_heads=2)


def row(kind="o_proj", n=256, k=256, group=64, bits=4, symmetric=False, merged=None, g_idx=False, actorders=()):
    block = "self_attn" if kind in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return Row(kind, n, k, group, bits, symmetric, g_idx, merged or ((kind, n),),
               prefixes=(f"model.layers.0.{block}.{kind}",), config_actorders=actorders)


def cell(r: Row, tp=1, device="sm80", fmt="gemm", model=GQA):
    return tgi.cell(r, partition(r, tp, model), tp, device, fmt)


def test_registered_with_its_version():
    assert parse_target("tgi") == (tgi, "3.3") and parse_target("TGI@3.3")[0] is tgi


@pytest.mark.parametrize("k, n, expect", [
    (128, 64, "loads"),    # the (128, 64) thread configuration
    (64, 128, "loads"),    # the (64, 128) one: vLLM's min_thread_k = 128 takes only the first
    (64, 64, "refuses"),
    (192, 96, "refuses"),  # K % 64 but N % 64 only
])
def test_marlin_thread_shapes(k, n, expect):
    part = Part(n, k, n)
    r = row(n=n, k=k, group=64)
    c = tgi.cell(r, part, 1, "sm80", "gemm")
    assert c.verdict == expect and c.checked == "source"
    assert (c.rule == "tgi.marlin.shape") == (expect == "refuses")
    assert (tgi.thread_shape(part) is None) == (expect == "loads")
    if (k, n) == (64, 128):
        assert vllm.marlin_tiles(part, r)  # the rule differs from vLLM's: checked, not assumed


def test_no_per_layer_fallback_once_marlin_is_chosen():
    c = tgi.cell(row(n=64, k=64), Part(64, 64, 64), 1, "sm90", "gemm")
    assert c.verdict == "refuses" and "marlin/gptq.py" in str(c.source)


def test_group_straddling_ranks_is_refused_by_the_sharded_scales():
    five = row(k=320, n=256)  # 5 groups of 64: TP 2 cannot shard them
    c = cell(five, tp=2)
    assert c.verdict == "refuses" and c.rule == "tgi.tp.shard" and "5 groups" in c.why
    assert "utils/weights.py" in str(c.source)
    assert cell(row(k=256, n=256), tp=2).verdict == "loads"  # 4 groups: 2 per rank
    assert cell(row(k=320, n=256, group=320), tp=2).rule != "tgi.tp.shard"  # one group per row: scales whole


def test_awq_marlin_conditions_and_the_awq_kernel_fallback():
    r = row()
    assert cell(r).kernel == "gptq-marlin"
    assert cell(row(symmetric=True)).kernel == "gptq-marlin"  # zero_point false: uint4b8, zero 8 as stored
    sm75 = cell(r, device="sm75")
    assert sm75.verdict == "fallback" and sm75.kernel == "awq (WQLinear)" and "capability" in sm75.why
    g256 = cell(row(k=512, group=256))
    assert g256.verdict == "fallback" and "group size 256" in g256.why
    assert cell(row(bits=8)).kernel == "gptq-marlin"
    assert cell(row(bits=8), device="sm75").verdict == "refuses"  # the AWQ kernel is 4-bit only


def test_gptq_marlin_needs_sym_else_exllama_or_triton():
    assert cell(row(symmetric=True), fmt="gptq").kernel == "gptq-marlin"
    asym = cell(row(), fmt="gptq")
    assert asym.verdict == "fallback" and asym.kernel == "exllamav2" and "asymmetric" in asym.why
    assert cell(row(), fmt="gptq", device="sm75").kernel == "triton QuantLinear"  # no Exllama below sm80
    assert cell(row(g_idx=True), fmt="gptq").kernel == "triton QuantLinear"  # desc_act disables Exllama
    assert cell(row(bits=8), fmt="gptq").kernel == "triton QuantLinear"
    assert cell(row(bits=3, k=384, group=128), fmt="gptq").verdict == "refuses"


def test_gptq_act_order_with_tp_loads_on_marlin_with_the_scales_whole():
    five = row(k=320, n=256, symmetric=True, g_idx=True)  # 5 groups over 2 ranks
    c = cell(five, tp=2, fmt="gptq")
    assert c.verdict == "refuses" and c.rule == "tgi.marlin.repack"  # not tgi.tp.shard: the scales stay whole,
    assert "160" in c.why  # but the repack needs each rank's 160 inputs to hold whole groups
    ok = row(k=512, n=256, symmetric=True, g_idx=True)
    c = cell(ok, tp=2, fmt="gptq")
    assert c.kernel == "gptq-marlin" and "is_full_k" in c.why
    assert "is_full_k" not in cell(ok, tp=1, fmt="gptq").why
    without = row(k=320, n=256, symmetric=True)
    assert cell(without, tp=2, fmt="gptq").rule == "tgi.tp.shard"


def test_gptq_codes_shard_along_k_awq_codes_along_n():
    r = row(k=200, group=-1, symmetric=True)  # 25 int32 rows of GPTQ codes over 2 ranks
    c = cell(r, tp=2, fmt="gptq")
    assert c.rule == "tgi.tp.shard" and "25 packed input rows" in c.why
    assert cell(row(k=256, group=-1, symmetric=True), tp=2, fmt="gptq").kernel == "gptq-marlin"  # 32 rows
    assert cell(r, tp=2, fmt="gemm").rule != "tgi.tp.shard"  # AWQ keeps K unpacked


def test_compressed_tensors_marlin_only_and_its_tensor_names():
    sym = row(symmetric=True)
    c = cell(sym, fmt="compressed-tensors")
    assert c.kernel == "gptq-marlin" and "repack_gptq_for_marlin" in str(c.source)  # not can_use_gptq_marlin
    assert cell(row(bits=8, symmetric=True), fmt="compressed-tensors").kernel == "gptq-marlin"
    assert cell(sym, fmt="compressed-tensors", device="sm75").rule == "tgi.ct.marlin-only"
    assert cell(sym, fmt="compressed-tensors", device="cpu").verdict == "refuses"
    assert cell(row(bits=2, symmetric=True), fmt="compressed-tensors").rule == "tgi.ct.scheme"
    col = cell(row("q_proj", merged=QKV), fmt="compressed-tensors")
    assert col.verdict == "refuses" and "qzeros" in col.why
    assert cell(row(), fmt="compressed-tensors").verdict == "unknown"  # asymmetric o_proj: row-parallel reader
    order = row(symmetric=True, g_idx=True, actorders=("group",))
    assert cell(order, fmt="compressed-tensors").rule == "tgi.ct.actorder"
    assert cell(row(symmetric=True, g_idx=True, actorders=("weight",)), fmt="compressed-tensors").verdict == "unknown"


def test_cpu_is_ipex_int4_only():
    for fmt in ("gemm", "gptq"):
        c = cell(row(symmetric=True), device="cpu", fmt=fmt)
        assert c.verdict == "loads" and c.kernel == "ipex woq int4" and "ipex.py" in str(c.source)
        assert cell(row(bits=8, symmetric=True), device="cpu", fmt=fmt).verdict == "refuses"


def test_kv_heads_are_never_replicated():
    q = row("q_proj", n=256, k=256, merged=QKV)
    assert cell(q, tp=2).verdict == "loads"
    four = cell(q, tp=4)  # 2 kv heads over 4 ranks: vLLM keeps one per rank, TGI raises
    assert four.verdict == "refuses" and four.rule == "tgi.tp.kv-heads"
    assert cell(row("o_proj", n=256, k=256), tp=4).rule != "tgi.tp.kv-heads"
    assert cell(q, tp=3, model=Model(6, 3)).rule == "tgi.tp.split"  # 256 rows over 3 ranks
    assert tgi.heads_cell("4 attention heads are not divisible by 8", "sm80").verdict == "refuses"
    assert tgi.heads_cell(None, "cpu").verdict == "loads"


def test_column_parallel_awq_shards_packed_output_words():
    r = row("gate_proj", n=64 * 3, k=256, merged=(("gate_proj", 192), ("up_proj", 192)))
    assert cell(r, tp=2).kernel == "gptq-marlin"  # 24 words: 12 per rank
    odd = row("gate_proj", n=200, k=256, symmetric=True, merged=(("gate_proj", 200), ("up_proj", 200)))
    c = cell(odd, tp=2)  # 100 rows per rank split, but 25 int32 words do not
    assert c.verdict == "refuses" and c.rule == "tgi.tp.shard" and "25 packed output words" in c.why
    assert cell(odd, tp=2, fmt="compressed-tensors").rule != "tgi.tp.shard"  # CT codes pack along K


def test_gemv_is_refused():
    c = cell(row(), fmt="gemv", device="cpu")
    assert c.verdict == "refuses" and c.rule == "tgi.awq.gemv" and c.checked == "source"


def test_cli_prints_the_tgi_matrix_of_a_golden(tmp_path, capsys):
    out = tmp_path / "f.json"
    path = golden.path("llama-gemm-g64-awq")
    assert main(["verify", str(path), "--target", "tgi", "--tp", "1,2", "--gpu", "sm80,sm90",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "== tgi 3.3 (gemm)" in text and "marlin/gptq.py can_use_gptq_marlin" in text
    (target,) = json.loads(out.read_text())["runtime_matrix"]["targets"]
    assert target["target"] == "tgi" and [c["verdict"] for c in target["configs"]] == ["loads"] * 4
    cells = [c for r in target["rows"] for c in r["cells"]]
    assert cells and all(c["checked"] == "source" and c["source"].startswith("server/") for c in cells)
    o_proj = next(r for r in target["rows"] if r["kind"] == "o_proj")
    tp2 = next(c for c in o_proj["cells"] if c["tp"] == 2)
    assert tp2["k_part"] == 64 and tp2["kernel"] == "gptq-marlin"  # K 64, N 128: the second thread shape
