"""Golden checkpoints pin format bytes: rebuilds match, loads match, drifts are readable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from awq_harness import golden
from awq_harness.awq_ref.checkpoint.awq import read_tensors
from awq_harness.awq_ref.formats import awq_gemm
from awq_harness.awq_ref.primitives import reproducible
from awq_harness.golden.manifest import logits_drift, read_manifest, tensor_sha256
from awq_harness.golden.rebuild import compare, drift

NAMES = golden.names()
REGENERATE = Path(golden.__file__).parent / "regenerate"


def _cpu_vendor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "")


# A golden whose AWQ search meets a near-tie that the pin does not hold across CPU vendors: built on
# an Intel Xeon, rebuilt on an AMD EPYC it differs in a few codes of layer 1 (qkv_proj, o_proj).
VENDOR_DRIFT = {"phi3-gemm-g64-awq": "AuthenticAMD"}


def _vendor_drift(name) -> bool:
    return VENDOR_DRIFT.get(name) == _cpu_vendor()


def _same_transformers_line(name) -> bool:
    from importlib.metadata import version

    made_with = read_manifest(golden.path(name))["generator"]["transformers"]
    return made_with.split(".")[:2] == version("transformers").split(".")[:2]


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory) -> Path:
    """Every golden rebuilt by ``golden/regenerate --out`` (a child process on the pinned
    numerics), once per run: xdist workers share it through a lock in the run's base temp."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's own folder either way
    out, done = root / "golden-rebuilds", root / "golden-rebuilds.done"
    with FileLock(str(root / "golden-rebuilds.lock")):
        if not done.exists():
            run = subprocess.run([sys.executable, str(REGENERATE), "--out", str(out)], capture_output=True, text=True)
            assert run.returncode == 0, f"golden/regenerate --out failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
            done.touch()
    return out


@pytest.mark.parametrize("name", NAMES)
def test_rebuilding_gives_identical_bytes(name, rebuilt, request):
    """On the pinned numerics every golden, calibrated or not, rebuilds to its committed bytes
    on any x86-64 CPU with AVX2. Another transformers line computes attention in another order
    (OPT scales q before or after the product), which can move an AWQ choice: there AWQ goldens
    must stay within a few codes (next test)."""
    if read_manifest(golden.path(name))["spec"]["method"] == "awq" and not _same_transformers_line(name):
        pytest.skip("AWQ golden made with another transformers line: checked by the near-identity test")
    if _vendor_drift(name):
        request.applymarker(pytest.mark.xfail(strict=True, reason="a near-tie the pin does not hold on this "
                                              "CPU vendor: checked by the near-identity test"))
    assert compare(name, rebuilt / name) == []


@pytest.mark.parametrize("name", [n for n in NAMES if read_manifest(golden.path(n))["spec"]["method"] == "awq"])
def test_awq_goldens_rebuild_within_a_few_codes_on_another_transformers_line(name, rebuilt):
    if _same_transformers_line(name) and not _vendor_drift(name):
        pytest.skip("same transformers line: the identical-bytes test holds it exactly")
    old, new = read_tensors(golden.path(name)), read_tensors(rebuilt / name)
    assert sorted(old) == sorted(new)
    words = [k for k in old if k.endswith((".qweight", ".qzeros"))]
    changed = sum(int((old[k] != new[k]).sum()) for k in words)
    assert changed <= 0.01 * sum(old[k].numel() for k in words)


@pytest.mark.parametrize("name", NAMES)
def test_manifest_records_the_numerics_pin(name):
    assert read_manifest(golden.path(name))["numerics"] == reproducible.describe()


@pytest.mark.parametrize("name", NAMES)
def test_loader_reproduces_manifest_tensors_and_logits(name):
    folder = golden.path(name)
    manifest = read_manifest(folder)
    tensors = read_tensors(folder)
    assert sorted(tensors) == sorted(manifest["tensors"])
    for tensor_name, expected in manifest["tensors"].items():
        t = tensors[tensor_name]
        assert [list(t.shape), str(t.dtype).removeprefix("torch.")] == [expected["shape"], expected["dtype"]]
        assert tensor_sha256(t) == expected["sha256"], tensor_name
    assert logits_drift(folder) == []


@pytest.mark.parametrize("name", NAMES)
def test_config_matches_spec(name):
    spec = read_manifest(golden.path(name))["spec"]
    q = json.loads((golden.path(name) / "config.json").read_text())["quantization_config"]
    if spec["layout"] == "gptq":
        assert (q["bits"], q["group_size"], not q["sym"], q["quant_method"]) == (
            spec["bits"], spec["group_size"], spec["zero_point"], "gptq")
    elif spec["layout"] == "compressed-tensors":
        w = q["config_groups"]["group_0"]["weights"]
        declared = (w["num_bits"], w["group_size"], not w["symmetric"], q["format"])
        assert declared == (spec["bits"], spec["group_size"], spec["zero_point"], "pack-quantized")
    else:
        assert (q["bits"], q["group_size"], q["zero_point"], q["version"]) == (
            spec["bits"], spec["group_size"], spec["zero_point"], spec["layout"])


def test_changed_nibble_order_fails_with_a_message_naming_tensor_and_element(monkeypatch):
    monkeypatch.setattr(awq_gemm, "ORDER", (0, 1, 2, 3, 4, 5, 6, 7))
    lines = drift("llama-gemm-g64-rtn")
    qweights = [line for line in lines if line.startswith("tensor model.layers.0.mlp.down_proj.qweight:")]
    assert qweights and "first differing element (" in qweights[0] and "golden " in qweights[0]
    assert any(".qzeros:" in line for line in lines)
    assert not any(".scales:" in line for line in lines)  # only the packing moved


def test_scales_rounded_through_another_dtype_are_caught(monkeypatch):
    import awq_harness.awq_ref.methods.rtn as rtn

    monkeypatch.setattr(rtn, "STORED_SCALE_DTYPE", torch.bfloat16)  # stored as fp16 after bf16 rounding
    lines = drift("llama-gemm-g32-rtn")
    assert any(".scales: first differing element" in line for line in lines)


def test_corrupted_logits_expectation_is_reported(tmp_path):
    import shutil

    folder = tmp_path / "g"
    shutil.copytree(golden.path("qwen2-gemm-g64-rtn"), folder)
    manifest = read_manifest(folder)
    manifest["logits"]["values"][0][0] += 0.01
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert logits_drift(folder) and "logits differ" in logits_drift(folder)[0]


def test_goldens_are_small():
    sizes = {name: sum(p.stat().st_size for p in golden.path(name).iterdir()) for name in NAMES}
    assert max(sizes.values()) < 3_000_000 and sum(sizes.values()) < 20_000_000


def test_load_by_name():
    model = golden.load("opt-gemm-g128-rtn")
    assert type(model).__name__ == "OPTForCausalLM"
    with pytest.raises(KeyError, match="no golden named"):
        golden.path("nope")
