"""The runtime matrix (verify --target): sharding arithmetic, each profile's rules on shapes
chosen to sit on either side of them, the findings' severity policy, and the CLI outputs."""
from __future__ import annotations

import json

import pytest

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.conformance.runner import load_layers
from awq_harness.conformance.runtimes import parse_devices, parse_target, parse_tps, sglang, transformers, vllm
from awq_harness.conformance.runtimes.matrix import RUNTIME_RULES, build, findings
from awq_harness.conformance.runtimes.shapes import Model, Row, heads_split, partition

QKV = (("q_proj", 320), ("k_proj", 160), ("v_proj", 160))
GQA = Model(heads=4, kv_heads=2)


def row(kind="o_proj", n=320, k=320, group=64, bits=4, symmetric=False, merged=None, prefix=None):
    block = "self_attn" if kind in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    prefix = prefix or f"model.layers.0.{block}.{kind}"
    return Row(kind, n, k, group, bits, symmetric, False, merged or ((kind, n),), prefixes=(prefix,))


def test_row_parallel_splits_in_features_column_parallel_the_merged_out_features():
    o = partition(row("o_proj"), 4, GQA)
    assert (o.n, o.k, o.why) == (320, 80, None)
    q = partition(row("q_proj", 320, 320, merged=QKV), 4, GQA)
    # 4 ranks over 2 kv heads: each rank keeps one kv head (80 rows) of k and of v
    assert (q.n, q.k, q.merged_n) == (80, 320, 80 + 80 + 80)
    k = partition(row("k_proj", 160, 320, merged=QKV), 2, GQA)
    assert (k.n, k.merged_n) == (80, 160 + 80 + 80)
    assert partition(row("k_proj", 160, 320, merged=QKV), 3, Model(6, 2)).why  # 3 ranks, 2 kv heads
    assert partition(row("o_proj", k=330), 4, GQA).why


def test_heads_must_divide_by_tp():
    assert heads_split(Model(9, 3), 2) and heads_split(Model(9, 3), 3) is None and heads_split(Model(), 8) is None


@pytest.mark.parametrize("version, k, expect", [
    ("0.32", 320, "loads"),      # 320 % 128 != 0: Marlin pads its tiles from 0.32
    ("0.31", 320, "fallback"),   # before: verify_marlin_supports_shape refuses, the awq kernel takes it
    ("0.31", 384, "loads"),
])
def test_vllm_awq_marlin_tiles_by_version(version, k, expect):
    r = row(k=k)
    c = vllm.cell(r, partition(r, 1, GQA), 1, "sm80", "gemm", version)
    assert c.verdict == expect
    assert (c.kernel == "awq (awq_gemm)") == (expect == "fallback")


def test_vllm_group_straddling_ranks_refuses_on_gpu_and_cpu():
    r = row(k=320, group=64)  # TP 2: 160 input columns per rank, 2.5 groups
    part = partition(r, 2, GQA)
    gpu = vllm.cell(r, part, 2, "sm90", "gemm")
    assert gpu.verdict == "refuses" and gpu.rule == "vllm.awq.shape" and "160" in gpu.why
    assert "awq.py" in str(gpu.source)
    cpu = vllm.cell(r, partition(row(k=320, group=32), 4, GQA), 4, "cpu", "gemm")
    assert cpu.verdict == "refuses" and cpu.rule == "vllm-cpu.cpuwna16" and "80" in cpu.why  # 80 % 32


def test_vllm_compressed_tensors_machete_on_sm90_marlin_on_sm80():
    r = row(n=256, k=256, symmetric=True)
    part = partition(r, 1, GQA)
    assert vllm.cell(r, part, 1, "sm90", "compressed-tensors").kernel == "Machete"
    assert vllm.cell(r, part, 1, "sm80", "compressed-tensors").kernel == "Marlin"
    odd = row(n=320, k=256, group=32, symmetric=True)  # 320 % 128 and group 32: no Machete
    assert vllm.cell(odd, partition(odd, 1, GQA), 1, "sm90", "compressed-tensors").kernel == "Marlin"


def test_vllm_cpu_takes_4_bits_only_and_marlin_takes_8():
    r8 = row(n=256, k=256, bits=8, symmetric=True)
    part = partition(r8, 1, GQA)
    assert vllm.cell(r8, part, 1, "cpu", "compressed-tensors").verdict == "refuses"
    assert vllm.cell(r8, part, 1, "sm80", "compressed-tensors").kernel == "Marlin"
    assert vllm.cell(r8, part, 1, "sm80", "gemm").verdict == "refuses"  # AutoAWQ is 4-bit only


def test_gemv_is_refused_by_vllm_and_sglang():
    r = row()
    for runtime in (vllm, sglang):
        assert runtime.cell(r, partition(r, 1, GQA), 1, "sm80", "gemv", runtime.VERSIONS[0]).verdict == "refuses"


def test_sglang_has_no_tile_padding():
    r = row(k=320)
    c = sglang.cell(r, partition(r, 1, GQA), 1, "sm80", "gemm")
    assert c.verdict == "fallback" and "min_thread_k" in c.why


def test_transformers_cpu_groups_and_model_wide_machete_on_sm90():
    r16, r64 = row(group=16), row(n=64, k=128, group=64)
    assert transformers.cell(r16, partition(r16, 1, GQA), 1, "cpu", "gemm").verdict == "refuses"
    assert transformers.cell(r64, partition(r64, 1, GQA), 1, "cpu", "gemm").kernel == "TorchAtenAwqLinear"
    sm90 = transformers.cell(r64, partition(r64, 1, GQA), 1, "sm90", "gemm")
    assert sm90.verdict == "refuses" and "AwqMacheteLinear" in sm90.why  # out 64 % 128
    assert transformers.cell(r64, partition(r64, 1, GQA), 1, "sm80", "gemm").kernel == "AwqMarlinLinear"
    assert transformers.cell(r64, partition(r64, 2, GQA), 2, "sm80", "gemm").verdict == "refuses"  # tp_plan: buffers


def test_flags_parse_and_refuse_bad_values():
    assert parse_target("vllm@0.31") == (vllm, "0.31") and parse_target("SGLang")[0] is sglang
    assert parse_tps("1,2,8") == (1, 2, 8) and parse_devices("sm90,cpu") == ("sm90", "cpu")
    for fn, bad in ((parse_target, "trtllm"), (parse_target, "vllm@0.1"), (parse_tps, "0"), (parse_tps, "a"),
                    (parse_devices, "sm70")):
        with pytest.raises(HarnessError):
            fn(bad)


def _section(path, targets=("vllm",), tps=(1, 2, 4, 8), devices=("sm80", "sm90", "cpu")):
    folder, decl, layers, _, report = load_layers(path)
    return build([parse_target(t) for t in targets], layers, decl, report.format, folder.config, tps, devices), layers


def test_rows_group_identical_layers_with_their_count(built):
    section, layers = _section(built["gemm"])
    rows = [r for r in section["targets"][0]["rows"] if "n" in r]
    assert sum(r["count"] for r in rows) == len(layers)
    assert len(rows) == len({(lay.prefix.rpartition(".")[2], lay.dims.n, lay.dims.k) for lay in layers})
    assert all(len(r["cells"]) == 12 for r in section["targets"][0]["rows"])


def test_policy_warns_errs_when_required_and_when_nothing_requested_loads(built):
    section, _ = _section(built["gemm"], tps=(8,), devices=("cpu",))  # 4 heads over 8 ranks
    found = findings(section, require=False)
    assert {f.rule for f in found} == {"runtime.refuses", "runtime.unservable"}
    assert {f.severity for f in found if f.rule == "runtime.refuses"} == {"warning"}
    assert {f.severity for f in findings(section, require=True) if f.rule == "runtime.refuses"} == {"error"}
    ok, _ = _section(built["gemm"], tps=(1,), devices=("cpu",))
    assert not [f for f in findings(ok, require=True) if f.severity != "info"]
    assert set(RUNTIME_RULES) >= {f.rule for f in found}


def test_cli_prints_and_writes_the_matrix_and_keeps_the_exit_policy(built, tmp_path, capsys):
    out = tmp_path / "f.json"
    args = ["verify", str(built["gemm"]), "--target", "vllm,transformers,sglang", "--tp", "1,8", "--gpu", "sm90,cpu"]
    outputs = ["--json", str(out), "--markdown", str(tmp_path / "c.md"), "--html", str(tmp_path / "c.html")]
    assert main([*args, *outputs]) == 0
    text = capsys.readouterr().out
    assert "== vllm 0.32 (gemm)" in text and "marlin_utils.py" in text and "runtime.refuses" in text
    data = json.loads(out.read_text())
    assert [t["target"] for t in data["runtime_matrix"]["targets"]] == ["vllm", "transformers", "sglang"]
    assert "## Runtime matrix" in (tmp_path / "c.md").read_text()
    assert "Runtime matrix" in (tmp_path / "c.html").read_text()
    assert main([*args, "--require-target"]) == 1
    capsys.readouterr()
    assert main(["verify", str(built["gemm"]), "--target", "trtllm"]) == 2
    assert "unknown runtime" in capsys.readouterr().err


def test_without_target_the_findings_have_no_matrix(built, tmp_path):
    out = tmp_path / "f.json"
    assert main(["verify", str(built["gemm"]), "--json", str(out), "--quiet"]) == 0
    data = json.loads(out.read_text())
    assert "runtime_matrix" not in data and not any(r.startswith("runtime.") for r in data["rules_run"])


def test_cpu_cells_agree_with_the_loader_claims(built):
    """At TP 1 on the CPU the matrix and conformance.loaders (checked against the real loaders in
    tests/peers/test_loader_claims.py) must say the same for vLLM-CPU and transformers."""
    from awq_harness.conformance import verify
    from awq_harness.conformance.loaders import claim

    for kind in ("gemm", "ct", "gptq"):
        section, _ = _section(built[kind], ("vllm", "transformers"), (1,), ("cpu",))
        report = verify(built[kind])
        for t in section["targets"]:
            if t["configs"][0]["verdict"] == "unknown":
                continue
            said = claim(report.findings, t["target"])
            assert ("refuses" if t["configs"][0]["verdict"] == "refuses" else "loads") == said, (kind, t["target"])


def test_a_group_straddling_ranks_is_misread_where_the_kernel_does_not_check_it():
    o = row(n=576, k=576, group=64)  # TP 2: 288 input columns per rank, 4.5 groups
    part = partition(o, 2, GQA)
    cpu = vllm.cell(o, part, 2, "cpu", "gemm")
    assert cpu.verdict == "misreads" and cpu.kernel == "CPUWNA16" and "parameter.py" in str(cpu.source)
    assert vllm.cell(o, part, 2, "sm80", "gemm").verdict == "refuses"  # Marlin checks, then the AWQ kernel refuses
    sym = row(n=576, k=576, group=64, symmetric=True)
    assert vllm.cell(sym, part, 2, "sm80", "compressed-tensors").kernel == "Exllama"  # Marlin refuses, Exllama not
    assert vllm.cell(sym, part, 2, "sm80", "compressed-tensors").verdict == "misreads"
    bf16 = Row(*[getattr(sym, f) for f in ("kind", "n", "k", "group", "bits", "symmetric", "g_idx", "merged")],
               prefixes=sym.prefixes, act_dtype="bfloat16")
    assert vllm.cell(bf16, part, 2, "sm80", "compressed-tensors").verdict == "refuses"  # Exllama needs fp16
    assert vllm.cell(o, partition(o, 1, GQA), 1, "cpu", "gemm").verdict == "loads"


def test_moe_experts_are_unknown_and_on_vllm_cpu_name_the_amx_condition(built):
    """vLLM-CPU's one WNA16 MoE kernel (CPUExpertsInt4) runs only on AMX hosts (served on an Intel
    Xeon, refused on an AMD EPYC: tests/peers/test_vllm_serving.py), so the cell says so."""
    from awq_harness.conformance import verify

    section, _ = _section(built["moe"], targets=("vllm",), tps=(1,), devices=("sm80", "cpu"))
    experts = [r for r in section["targets"][0]["rows"] if ".experts." in r.get("example", "")]
    assert experts and all(c["verdict"] == "unknown" for r in experts for c in r["cells"])
    assert {c["rule"] for r in experts for c in r["cells"]} == {"runtime.moe", "vllm-cpu.moe"}
    assert all("AMX" in c["why"] for r in experts for c in r["cells"] if c["device"] == "cpu")
    said = [f for f in verify(built["moe"]).of_rule("loader.vllm") if "AMX" in f.message]
    assert len(said) == 1 and said[0].severity == "info"


@pytest.mark.parametrize("name", ["llama-ct-g64-w4w8-rtn", "phi3-gemm-g64-awq"])
def test_a_remote_checkpoint_gets_the_matrix_of_its_folder(name, tmp_path, monkeypatch, capsys):
    """Over HTTP the matrix is built from the same headers and config the verification reads."""
    from awq_harness import golden
    from tests.conformance.http_server import serve

    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "cache"))
    flags = ["--target", "vllm,transformers,sglang", "--tp", "1,2,4", "--gpu", "sm80,sm90,cpu"]
    local, remote = tmp_path / "local.json", tmp_path / "remote.json"
    code = main(["verify", str(golden.path(name)), "--json", str(local), *flags])
    with serve(golden.path(name)) as (url, _):
        assert main(["verify", url, "--json", str(remote), *flags]) == code
    matrix = json.loads(remote.read_text())["runtime_matrix"]
    assert matrix == json.loads(local.read_text())["runtime_matrix"] and matrix["targets"][0]["rows"]
    assert "TP4 sm90" in capsys.readouterr().out
