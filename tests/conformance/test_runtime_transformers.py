"""The transformers profile of the runtime matrix: GPTQ through GPT-QModel's kernels,
compressed-tensors decompressed to dense, tensor parallelism refused, each rule on shapes and
configs chosen to sit on either side of it (tests/peers/test_runtime_matrix_transformers.py checks
the CPU cells against the real loaders)."""
from __future__ import annotations

import pytest

from awq_harness.conformance.runtimes import transformers
from awq_harness.conformance.runtimes.shapes import Model, Row, partition

GQA = Model(heads=4, kv_heads=2)


def row(n=256, k=256, group=64, bits=4, symmetric=True, kind="o_proj", actorders=()):
    block = "self_attn" if kind in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
    return Row(kind, n, k, group, bits, symmetric, False, ((kind, n),), prefixes=(f"model.layers.0.{block}.{kind}",),
               config_actorders=actorders)


def cell(r: Row, device: str, fmt: str, tp: int = 1):
    return transformers.cell(r, partition(r, tp, GQA), tp, device, fmt)


@pytest.mark.parametrize("r, verdict, kernel", [
    (row(group=64), "loads", "TorchAtenLinear"),
    (row(group=256, k=256), "fallback", "TorchFusedLinear"),     # one group per row: -1, TorchAten has no -1
    (row(group=64, bits=8), "fallback", "TorchLinear"),          # 8 bits: neither int4pack class
    (row(group=64, bits=3), "fallback", "TorchLinear"),
    (row(group=16), "refuses", None),                            # TorchAten takes 16, ATen int4pack does not
    (row(group=320, k=320), "refuses", None),                    # per channel over 320 columns: qGroupSize 320
])
def test_gptq_on_the_cpu_takes_the_first_kernel_that_fits_then_int4pack_checks_the_group(r, verdict, kernel):
    c = cell(r, "cpu", "gptq")
    assert (c.verdict, c.kernel, c.checked) == (verdict, kernel, "loader")
    assert "optimum" in c.why


def test_gptq_marlin_takes_symmetric_weights_only_and_exllama_the_zero_points():
    sym = cell(row(symmetric=True), "sm80", "gptq")
    assert (sym.verdict, sym.kernel) == ("loads", "MarlinLinear")
    asym = cell(row(symmetric=False), "sm80", "gptq")
    assert (asym.verdict, asym.kernel) == ("fallback", "ExllamaV2Linear") and "zero point" in asym.why
    narrow = cell(row(n=48, symmetric=False), "sm80", "gptq")  # ExllamaV2 chosen for the model, out 48 % 32
    assert narrow.verdict == "refuses" and "ExllamaV2Linear" in narrow.why
    assert cell(row(n=48, symmetric=True), "sm80", "gptq").kernel == "MarlinLinear"  # Marlin has no shape rule
    assert cell(row(bits=8, symmetric=False), "sm80", "gptq").kernel == "TritonV2Linear"
    assert cell(row(bits=3, symmetric=False), "sm80", "gptq").kernel == "TorchLinear"
    assert cell(row(symmetric=True), "sm75", "gptq").kernel == "MarlinLinear"  # GPTQ Marlin from 7.5


def test_gptq_machete_on_sm90_with_the_gptq_v2_difference_said():
    c = cell(row(n=256, k=256, group=128), "sm90", "gptq")
    assert (c.verdict, c.kernel) == ("loads", "MacheteLinear") and "gptq_v2" in c.why and "MarlinLinear" in c.why
    narrow = cell(row(n=64, k=256, group=128), "sm90", "gptq")  # Machete chosen, out 64 % 128
    assert narrow.verdict == "refuses" and "MacheteLinear" in narrow.why and "gptq_v2" in narrow.why
    g32 = cell(row(group=32), "sm90", "gptq")  # Machete takes no group 32: Marlin in both lists
    assert g32.kernel == "MarlinLinear" and "gptq_v2" not in g32.why


@pytest.mark.parametrize("device", ["cpu", "sm80", "sm90"])
@pytest.mark.parametrize("bits", [4, 8])
def test_compressed_tensors_decompresses_to_dense_on_every_device(device, bits):
    c = cell(row(bits=bits, group=64, symmetric=False), device, "compressed-tensors")
    assert (c.verdict, c.kernel, c.rule) == ("loads", transformers.DENSE, "transformers.ct.decompress")
    assert c.checked == ("loader" if device == "cpu" else "source")


@pytest.mark.parametrize("actorder, refused", [("group", True), ("dynamic", True), ("weight", False), (None, False)])
def test_compressed_tensors_actorder_group_and_dynamic_are_refused_before_any_layer(actorder, refused):
    r = row(actorders=(actorder,) if actorder else ())
    for device, tp in (("cpu", 1), ("sm80", 1), ("cpu", 2)):
        c = cell(r, device, "compressed-tensors", tp)
        assert (c.rule == "transformers.ct.actorder") == refused, (device, tp)
        assert c.verdict == ("refuses" if refused or tp > 1 else "loads")
    assert cell(r, "cpu", "gptq").verdict == "loads"  # the ordering is a compressed-tensors config field only


@pytest.mark.parametrize("fmt, rule", [("gemm", "transformers.tp.buffers"), ("gemv", "transformers.tp.buffers"),
                                       ("gptq", "transformers.tp.buffers"),
                                       ("compressed-tensors", "transformers.tp.ct-decompress")])
def test_tp_plan_refuses_every_quantised_format_above_one_rank(fmt, rule):
    r = row(group=64, symmetric=fmt != "gemm")
    for tp in (2, 4, 8):
        for device in ("cpu", "sm90"):
            c = cell(r, device, fmt, tp)
            assert (c.verdict, c.rule) == ("refuses", rule)
            assert c.checked == ("loader" if device == "cpu" and fmt in ("gemm", "compressed-tensors") else "source")
    assert cell(r, "sm90", fmt, 1).verdict != "refuses"


def test_unmodelled_formats_stay_unknown():
    assert cell(row(), "cpu", "marlin").verdict == "unknown"


def test_the_loader_claim_and_the_cpu_cells_agree_on_actorder(built):
    from awq_harness.conformance import verify
    from awq_harness.conformance.loaders import claim
    from awq_harness.conformance.runner import load_layers
    from awq_harness.conformance.runtimes import parse_target
    from awq_harness.conformance.runtimes.matrix import build

    for kind, said in (("ct-actorder", "refuses"), ("ct", "loads"), ("gptq", "loads")):
        folder, decl, layers, _, report = load_layers(built[kind])
        section = build([parse_target("transformers")], layers, decl, report.format, folder.config, (1,), ("cpu",))
        verdict = section["targets"][0]["configs"][0]["verdict"]
        assert claim(verify(built[kind]).findings, "transformers") == said, kind
        assert ("refuses" if verdict == "refuses" else "loads") == said, (kind, verdict)
