"""The transformers cells of the runtime matrix against GPT-QModel's own selection, the ATen
kernel, compressed-tensors loads and two-rank tp_plan runs (tox -e peers: transformers 5.17,
GPT-QModel 7.6, compressed-tensors 0.19).

- AWQ and GPTQ CPU cells (checked "loader"): ``hf_select_quant_linear_v2`` with
  ``device_map="cpu"``, exactly as ``transformers/integrations/awq.py`` and optimum's
  ``GPTQQuantizer.select_quant_linear`` call it; the chosen class built for the layer's shape
  (its constructor validates in/out features and raises); for the int4pack classes, ATen's
  ``_weight_int4pack_mm_for_cpu`` run on the layer's group width. (optimum is not in the pins, so
  transformers itself cannot load a GPTQ checkpoint here: the selection is what it would run.)
- GPU cells (checked "selection"): GPT-QModel's ``AUTO_BACKEND_KERNEL_MAPPING`` for AWQ GEMM or
  GPTQ in its order, each CUDA class's own ``_validate`` (bits, group size, symmetry, then the
  layer's in/out features), skipping classes whose ``validate_device`` capability the cell's GPU
  lacks (the capability is the profile's, not checkable without a GPU).
- compressed-tensors CPU cells at TP 1: the checkpoint loaded by transformers; "refuses" must
  raise, "loads" must give logits within twice our own bf16 error of our dequantised reference,
  with every quantised linear left a dense ``nn.Linear`` after the first forward.
- CPU cells at TP 2 (AWQ and compressed-tensors): ``tp_plan="auto"`` on two gloo ranks; the
  profile's refusal must be what the ranks do.
``AWQ_MATRIX_CHECKPOINTS`` (colon-separated folders) adds checkpoints.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from awq_harness.conformance.runner import load_layers
from awq_harness.conformance.runtimes import parse_target
from awq_harness.conformance.runtimes.matrix import build
from awq_harness.conformance.runtimes.transformers import CUDA_KERNELS, GPTQ_CUDA_KERNELS

pytest.importorskip("gptqmodel")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.peers
ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ("llama-gemm-g64-awq", "llama-gemm-g64-sym-rtn", "llama-gemm-pc-rtn", "llama-gemm-g32-rtn",
           "llama-gemm-g128-rtn", "phi3-gemm-g64-awq", "qwen2-gemm-g64-rtn", "llama-gptq-g64-sym")
CT_GOLDENS = ("llama-ct-g64-rtn", "llama-ct-g64-w4w8-rtn", "qwen2-ct-g128-sym-rtn", "llama-ct-g64-actorder-gptq")
TP_GOLDENS = ("llama-gemm-g64-rtn", "llama-ct-g64-rtn")
DEVICES = ("cpu", "sm80", "sm90")
MIN_CAP = {k.name: k.min_cap for k in CUDA_KERNELS + GPTQ_CUDA_KERNELS}
PREFERRED_CPU = ("TorchAtenAwqLinear", "TorchAtenLinear")
INT4PACK_CPU = PREFERRED_CPU + ("TorchFusedAwqLinear", "TorchFusedLinear")
TOKEN_IDS = [1, 5, 9, 13, 17, 21]


def _int4pack_runs(k: int, n: int, group: int) -> bool:
    """ATen's CPU int4 matmul on a (k, n) weight with this group width: does it run?"""
    w = torch.zeros(n, k, dtype=torch.int32)
    try:
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(w, 1)
        scales = torch.ones(k // group if group < k else 1, n, 2, dtype=torch.bfloat16)
        torch.ops.aten._weight_int4pack_mm_for_cpu(torch.zeros(1, k, dtype=torch.bfloat16), packed, group, scales)
    except RuntimeError:
        return False
    return True


def _select_kwargs(r: dict, fmt: str) -> dict:
    """The arguments transformers' AWQ integration / optimum's GPTQ quantizer pass."""
    from gptqmodel.quantization import METHOD

    group = -1 if r["group"] >= r["k"] else r["group"]
    if fmt == "gptq":
        return {"bits": r["bits"], "group_size": group, "desc_act": False, "sym": r["symmetric"], "format": "gptq",
                "quant_method": METHOD.GPTQ}
    return {"bits": r["bits"], "group_size": group, "desc_act": False, "sym": False, "format": "gemm",
            "quant_method": METHOD.AWQ, "zero_point": not r["symmetric"]}


def _cpu(r: dict, fmt: str) -> tuple[str, str | None]:
    from gptqmodel.utils.importer import hf_select_quant_linear_v2

    group = -1 if r["group"] >= r["k"] else r["group"]
    try:
        cls = hf_select_quant_linear_v2(**_select_kwargs(r, fmt), pack=False, device_map="cpu")
        with torch.device("meta"):
            cls(bits=r["bits"], sym=r["symmetric"], desc_act=False, group_size=group, in_features=r["k"],
                out_features=r["n"], bias=False, dev=torch.device("meta"), register_buffers=True)
    except (ValueError, NotImplementedError, TypeError):
        return "refuses", None
    if cls.__name__ in INT4PACK_CPU and not _int4pack_runs(r["k"], r["n"], r["group"]):
        return "refuses", None
    return ("loads" if cls.__name__ in PREFERRED_CPU else "fallback"), cls.__name__


def _cuda(r: dict, cap: int, fmt: str) -> tuple[str, str | None]:
    from gptqmodel.models._const import DEVICE
    from gptqmodel.quantization import FORMAT, METHOD
    from gptqmodel.utils.importer import AUTO_BACKEND_KERNEL_MAPPING

    group = -1 if r["group"] >= r["k"] else r["group"]
    kwargs = {"bits": r["bits"], "group_size": group, "desc_act": False, "sym": r["symmetric"],
              "pack_dtype": torch.int32, "dtype": torch.float16}
    mapping = AUTO_BACKEND_KERNEL_MAPPING[METHOD.GPTQ][FORMAT.GPTQ] if fmt == "gptq" else \
        AUTO_BACKEND_KERNEL_MAPPING[METHOD.AWQ][FORMAT.GEMM]
    candidates = [cls for cls in mapping.values()
                  if DEVICE.CUDA in cls.SUPPORTS_DEVICES or DEVICE.ALL in cls.SUPPORTS_DEVICES]
    preferred = next(c for c in candidates if MIN_CAP.get(c.__name__, 0) <= cap)
    for cls in candidates:
        if MIN_CAP.get(cls.__name__, 0) > cap or not cls._validate(**kwargs)[0]:
            continue
        if not cls._validate(**kwargs, in_features=r["k"], out_features=r["n"])[0]:
            return "refuses", None
        return ("loads" if cls is preferred else "fallback"), cls.__name__
    return "refuses", None


def _checkpoints(tmp_path_factory) -> dict[str, Path]:
    from awq_harness.awq_ref.primitives.quant import QuantSpec
    from tests.conformance.helpers import make_checkpoint

    root = tmp_path_factory.mktemp("matrix-tf")
    out = {name: ROOT / "golden" / "checkpoints" / name for name in GOLDENS}
    out["awkward-h320-i864-g32"] = make_checkpoint(root / "awkward", spec=QuantSpec(4, 32), hidden=320,
                                                   intermediate=864, layers=2)
    out["g16"] = make_checkpoint(root / "g16", spec=QuantSpec(4, 16), layers=1)
    out["pc-i288"] = make_checkpoint(root / "pc", spec=QuantSpec(4, -1), intermediate=288, layers=1)
    for extra in filter(None, os.environ.get("AWQ_MATRIX_CHECKPOINTS", "").split(":")):
        out[Path(extra).name] = Path(extra)
    return out


def test_every_transformers_cell_matches_gptqmodels_selection(tmp_path_factory, capsys):
    summary, wrong = [], []
    for name, path in _checkpoints(tmp_path_factory).items():
        folder, decl, layers, _, report = load_layers(path)
        if report.format not in ("gemm", "gptq"):
            continue
        section = build([parse_target("transformers")], layers, decl, report.format, folder.config, (1,), DEVICES)
        checked = 0
        for r in section["targets"][0]["rows"]:
            for c in r["cells"]:
                if c["checked"] == "source":
                    continue
                fmt = section["targets"][0]["format"]
                seen = _cpu(r, fmt) if c["device"] == "cpu" else _cuda(r, int(c["device"][2:]), fmt)
                checked += 1
                if (c["verdict"], c["kernel"] if seen[1] else None) != seen:
                    wrong.append((name, r["kind"], c["device"], (c["verdict"], c["kernel"]), seen, c["why"]))
        summary.append(f"{name}: {checked} transformers cells confirmed by GPT-QModel's code")
    with capsys.disabled():
        print("\n" + "\n".join(summary))
    assert not wrong, "\n".join(map(str, wrong[:20]))


def _matrix(path: Path, tps=(1,), devices=("cpu",)) -> dict:
    folder, decl, layers, _, report = load_layers(path)
    return build([parse_target("transformers")], layers, decl, report.format, folder.config, tps, devices)["targets"][0]


def _close_to_reference(logits, folder: Path) -> bool:
    """Within twice our own dequantised reference's bf16 error."""
    from awq_harness.conformance.dequantized import load_dequantized

    ids = torch.tensor([TOKEN_IDS])
    with torch.no_grad():
        exact = load_dequantized(folder, torch.float32)(ids).logits.float()
        bf16 = load_dequantized(folder, torch.bfloat16)(ids).logits.float()
    return bool((logits - exact).abs().max() <= 2 * (bf16 - exact).abs().max() + 1e-3)


def _ct_load(folder: Path) -> tuple[str, str]:
    """transformers' compressed-tensors load and first forward: ("refuses", error) or ("loads", linear classes)."""
    from awq_harness.awq_ref.model.compat import causal_lm_from_pretrained

    try:
        model = causal_lm_from_pretrained(folder, torch.float16, device_map="cpu")
        with torch.no_grad():
            logits = model(torch.tensor([TOKEN_IDS])).logits.float()
    except Exception as err:  # noqa: BLE001 - the verdict is whether loading raises
        return "refuses", f"{type(err).__name__}: {err}"
    assert logits.isfinite().all() and _close_to_reference(logits, folder), folder.name
    linears = {type(m).__name__ for name, m in model.named_modules() if name.endswith(("_proj", "fc1", "fc2"))}
    return "loads", ",".join(sorted(linears))


@pytest.mark.parametrize("name", CT_GOLDENS)
def test_compressed_tensors_cpu_cells_are_what_transformers_does(name):
    pytest.importorskip("compressed_tensors")
    path = ROOT / "golden" / "checkpoints" / name
    target = _matrix(path)
    verdicts = {c["verdict"] for r in target["rows"] for c in r["cells"]}
    assert len(verdicts) == 1 and all(c["checked"] == "loader" for r in target["rows"] for c in r["cells"])
    seen, detail = _ct_load(path)
    assert seen == verdicts.pop(), detail
    assert seen == "refuses" or detail == "Linear", detail  # decompressed: plain dense linears


TP_SCRIPT = """
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float16, tp_plan="auto")
try:
    with torch.no_grad():
        model(torch.tensor([[1, 5, 9, 13]]))
except Exception as err:
    print("RAISED", type(err).__name__, err, flush=True)
else:
    print("RAN", flush=True)
"""


def _tp2(path: Path, tmp_path: Path) -> list[str]:
    """What each of two gloo ranks prints after loading with tp_plan="auto" and one forward."""
    script = tmp_path / "tp2.py"
    script.write_text(TP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29531", str(script), str(path)],
                         capture_output=True, text=True, timeout=600, env=env)
    return [line for line in run.stdout.splitlines() if line.startswith(("RAISED", "RAN"))]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two tensor-parallel ranks")
@pytest.mark.parametrize("name", TP_GOLDENS)
def test_tensor_parallel_2_cpu_cells_are_what_tp_plan_does(name, tmp_path):
    path = ROOT / "golden" / "checkpoints" / name
    target = _matrix(path, tps=(2,))
    cells = [c for r in target["rows"] for c in r["cells"]]
    assert {(c["verdict"], c["checked"]) for c in cells} == {("refuses", "loader")}
    ranks = _tp2(path, tmp_path)
    expected = "AttributeError" if target["format"] == "compressed-tensors" else "RuntimeError"
    assert len(ranks) == 2 and all(line.startswith(f"RAISED {expected}") for line in ranks), ranks
