"""The transformers cells of the runtime matrix against GPT-QModel's own selection and the ATen
kernel (tox -e peers: transformers 5.17, GPT-QModel 7.6).

- CPU cells (checked "loader"): ``hf_select_quant_linear_v2`` with ``device_map="cpu"``, exactly as
  ``transformers/integrations/awq.py`` calls it; the chosen class built for the layer's shape
  (its constructor validates in/out features and raises); for the int4pack classes, ATen's
  ``_weight_int4pack_mm_for_cpu`` run on the layer's group width.
- GPU cells (checked "selection"): GPT-QModel's ``AUTO_BACKEND_KERNEL_MAPPING`` for AWQ GEMM in
  its order, each CUDA class's own ``_validate`` (bits, group size, then the layer's in/out
  features), skipping classes whose ``validate_device`` capability the cell's GPU lacks (the
  capability is the profile's, not checkable without a GPU).
Cells at TP > 1 and non-AutoAWQ formats are ``unknown`` in the profile and not checked.
``AWQ_MATRIX_CHECKPOINTS`` (colon-separated folders) adds checkpoints.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from awq_harness.conformance.runner import load_layers
from awq_harness.conformance.runtimes import parse_target
from awq_harness.conformance.runtimes.matrix import build
from awq_harness.conformance.runtimes.transformers import CUDA_KERNELS

pytest.importorskip("gptqmodel")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.peers
ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ("llama-gemm-g64-awq", "llama-gemm-g64-sym-rtn", "llama-gemm-pc-rtn", "llama-gemm-g32-rtn",
           "llama-gemm-g128-rtn", "phi3-gemm-g64-awq", "qwen2-gemm-g64-rtn")
DEVICES = ("cpu", "sm80", "sm90")
MIN_CAP = {k.name: k.min_cap for k in CUDA_KERNELS}


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


def _cpu(r: dict) -> tuple[str, str | None]:
    from gptqmodel.quantization import METHOD
    from gptqmodel.utils.importer import hf_select_quant_linear_v2

    group = -1 if r["group"] >= r["k"] else r["group"]
    try:
        cls = hf_select_quant_linear_v2(bits=r["bits"], group_size=group, desc_act=False, sym=False, format="gemm",
                                        quant_method=METHOD.AWQ, zero_point=not r["symmetric"], pack=False,
                                        device_map="cpu")
        with torch.device("meta"):
            cls(bits=r["bits"], sym=r["symmetric"], desc_act=False, group_size=group, in_features=r["k"],
                out_features=r["n"], bias=False, dev=torch.device("meta"), register_buffers=True)
    except (ValueError, NotImplementedError, TypeError):
        return "refuses", None
    if cls.__name__ in ("TorchAtenAwqLinear", "TorchFusedAwqLinear") and not _int4pack_runs(r["k"], r["n"], r["group"]):
        return "refuses", None
    return ("loads" if cls.__name__ == "TorchAtenAwqLinear" else "fallback"), cls.__name__


def _cuda(r: dict, cap: int) -> tuple[str, str | None]:
    from gptqmodel.models._const import DEVICE
    from gptqmodel.quantization import FORMAT, METHOD
    from gptqmodel.utils.importer import AUTO_BACKEND_KERNEL_MAPPING

    group = -1 if r["group"] >= r["k"] else r["group"]
    kwargs = {"bits": r["bits"], "group_size": group, "desc_act": False, "sym": r["symmetric"],
              "pack_dtype": torch.int32, "dtype": torch.float16}
    candidates = [cls for cls in AUTO_BACKEND_KERNEL_MAPPING[METHOD.AWQ][FORMAT.GEMM].values()
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
        section = build([parse_target("transformers")], layers, decl, report.format, folder.config, (1,), DEVICES)
        checked = 0
        for r in section["targets"][0]["rows"]:
            for c in r["cells"]:
                if c["checked"] == "source":
                    continue
                seen = _cpu(r) if c["device"] == "cpu" else _cuda(r, int(c["device"][2:]))
                checked += 1
                if (c["verdict"], c["kernel"] if seen[1] else None) != seen:
                    wrong.append((name, r["kind"], c["device"], (c["verdict"], c["kernel"]), seen, c["why"]))
        summary.append(f"{name}: {checked} transformers cells confirmed by GPT-QModel's code")
    with capsys.disabled():
        print("\n" + "\n".join(summary))
    assert not wrong, "\n".join(map(str, wrong[:20]))
