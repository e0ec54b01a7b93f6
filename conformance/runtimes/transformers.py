"""transformers 5.17 with GPT-QModel 7.6 and compressed-tensors 0.19 (the peers pins): which
kernel each linear gets, per format, device and tensor-parallel size, read from their loaders.

AutoAWQ (``transformers/quantizers/quantizer_awq.py``) and GPTQ (``quantizer_gptq.py``, through
optimum's ``GPTQQuantizer.convert_model``) hand the model to GPT-QModel's ``utils/importer.py``
``hf_select_quant_linear_v2``, which picks one kernel class for the whole model: the first class
of ``AUTO_BACKEND_KERNEL_MAPPING[method][format]`` whose bits, group sizes, symmetry and device it
supports. Each layer is then built with that class, and its in/out feature rules
(``SUPPORTS_IN_FEATURES_DIVISIBLE_BY`` / ``SUPPORTS_OUT_FEATURES_DIVISIBLE_BY``, checked in
``nn_modules/qlinear/__init__.py`` ``BaseQuantLinear._validate``) must hold or the load raises.

- AWQ on the CPU, in priority order: ``torch_aten_kernel_awq.py`` TorchAtenAwqLinear (4 bits, groups
  16/32/64/128), ``torch_fused_awq.py`` TorchFusedAwqLinear (4 bits, also -1), both on ATen's
  ``_weight_int4pack_mm_for_cpu``, which raises unless the group width is 32/64/128/256
  (``qGroupSize``); then ``torch_awq.py`` AwqTorchLinear (plain torch, the slow fallback, 2-8 bits).
  No GEMV kernel exists for the CPU.
- AWQ on CUDA, in priority order: ``swordfish.py`` AwqSwordfishLinear (Blackwell), ``machete_awq.py``
  AwqMacheteLinear (sm90; in % 64, out % 128), ``marlin_awq.py`` AwqMarlinLinear (sm80+; out % 8),
  ``exllamav2_awq.py`` (4 bits; in % 32, out % 32), ``gemm_awq.py`` AwqGEMMLinear, the Triton GEMM,
  then AwqTorchLinear. The capabilities are those of each class's ``validate_device``.
  GEMV checkpoints get ``gemv_awq.py`` AwqGEMVLinear.
- GPTQ: ``GptqHfQuantizer.__init__`` raises ImportError unless optimum is installed (the peers pins
  leave it out); with it, the same selection over ``METHOD.GPTQ``. CPU: ``torch_aten_kernel.py``
  TorchAtenLinear (4 bits, groups 16/32/64/128), ``torch_fused.py`` TorchFusedLinear (4 bits, also
  -1), both on the same ATen int4pack op, then ``torch.py`` TorchLinear (2-8 bits). CUDA, for
  ``FORMAT.GPTQ``: SwordfishLinear (sm100), MacheteLinear (sm90; groups -1/64/128; in % 64,
  out % 128), ``marlin.py`` MarlinLinear (capability 75+, symmetric only), ExllamaV2Linear (4 bits;
  in % 32, out % 32), TritonV2Linear (2/4/8 bits; in % 32, out % 32), BitblasLinear (never reached:
  Triton takes everything it takes), TorchLinear. ``FORMAT.GPTQ_V2`` drops Swordfish and Machete:
  the matrix shows the ``gptq`` choice and says where a v2 checkpoint differs. ``desc_act`` changes
  nothing: every class before BitBLAS takes it (each builds its g_idx permutation).
- compressed-tensors pack-quantized (W4A16 / W8A16): ``quantizer_compressed_tensors.py``
  ``CompressedTensorsHfQuantizer.__init__`` parses the config with compressed-tensors 0.19's
  ``quantization/quant_args.py`` ``QuantizationArgs.validate_actorder``, which raises for actorder
  "group" / "dynamic" (removed; "weight" and none load) before any layer. Then
  ``_process_model_before_weight_loading`` runs ``apply_quantization_config(run_compressed=False)``
  and ``ModelCompressor.compress_model``, which registers ``add_decompress_hook``: with the default
  ``dequantize=False`` the packed weights load as stored and the first forward decompresses every
  layer to a dense weight (``pack_quantized/base.py`` ``PackedQuantizationCompressor.decompress``);
  the model then runs plain dense matmuls on any device. No quantised kernel is involved, so no
  shape rule either (5.23 keeps this route as the default).
- Tensor parallelism (``tp_plan="auto"``; ``transformers/distributed/tensor_parallel.py``, which
  ``integrations/tensor_parallel.py`` re-exports): ``apply_tensor_parallelism`` shards only a
  module's ``named_parameters`` and installs ``TensorParallelLayer.install_forward`` on it.
  GPT-QModel keeps qweight / qzeros / scales / g_idx as buffers, so every rank holds them whole,
  ``ColwiseParallel.transform_inputs_pre_forward`` (and the row-wise one) wraps the input as a
  DTensor, and the first forward raises ("got mixed torch.Tensor and DTensor"): AWQ and GPTQ refuse
  at every TP > 1. compressed-tensors' parameters are sharded, but the first forward's decompress
  hook runs ``compressed_tensors/offload/module.py`` ``offload_module``, which reads
  ``module.forward.__func__`` of the plain function ``install_forward`` put there and raises
  AttributeError: refused too. Observed on the CPU with two gloo ranks; the GPU takes the same path.
"""
from __future__ import annotations

from dataclasses import dataclass

from awq_harness.conformance.loaders import refuses_actorder
from awq_harness.conformance.runtimes.cells import Cell, Source
from awq_harness.conformance.runtimes.shapes import Part, Row

NAME = "transformers"
VERSIONS = ("5.17+gptqmodel-7.6",)
G = "gptqmodel/nn_modules/qlinear/"
CT = "compressed_tensors/"
SRC_SELECT = Source("gptqmodel/utils/importer.py", "hf_select_quant_linear_v2 / select_quant_linear")
SRC_VALIDATE = Source(G + "__init__.py", "BaseQuantLinear._validate")
INT4PACK_OP = "ATen _weight_int4pack_mm_for_cpu qGroupSize"
SRC_GEMV = Source(G + "gemv_awq.py", "AwqGEMVLinear.SUPPORTS_DEVICES")
SRC_CT_ACTORDER = Source(CT + "quantization/quant_args.py",
                         "QuantizationArgs.validate_actorder (via CompressedTensorsHfQuantizer.__init__)")
SRC_CT_DENSE = Source(CT + "compressors/model_compressors/model_compressor.py",
                      "ModelCompressor.compress_model / add_decompress_hook")
SRC_TP_BUFFERS = Source("transformers/distributed/tensor_parallel.py",
                        "apply_tensor_parallelism (parameters only), ColwiseParallel.transform_inputs_pre_forward")
SRC_TP_CT = Source(CT + "offload/module.py", "offload_module (module.forward.__func__ after install_forward)")
OPTIMUM = "needs optimum installed: GptqHfQuantizer.__init__ raises ImportError without it"
DENSE = "dense (decompressed on first forward)"
TP_CHECKED = ("gemm", "compressed-tensors")  # the peers tests run these on two CPU ranks


@dataclass(frozen=True)
class Kernel:
    """One GPT-QModel kernel class, as its class attributes declare it (``SUPPORTS_*``)."""
    name: str
    file: str
    min_cap: int       # CUDA classes: the capability its validate_device needs; CPU classes: 0
    bits: tuple[int, ...]
    groups: tuple[int, ...]
    in_div: int
    out_div: int
    int4pack: bool = False  # runs ATen's int4pack op, which takes only INT4PACK_GROUPS widths
    symmetric_only: bool = False  # SUPPORTS_SYM == [True]


# AUTO_BACKEND_KERNEL_MAPPING[METHOD.AWQ][FORMAT.GEMM], in priority order, per device family
CUDA_KERNELS = (
    Kernel("AwqSwordfishLinear", "swordfish.py", 100, (4,), (-1, 32, 64, 128), 64, 64),
    Kernel("AwqMacheteLinear", "machete_awq.py", 90, (4, 8), (-1, 32, 64, 128), 64, 128),
    Kernel("AwqMarlinLinear", "marlin_awq.py", 80, (4, 8), (-1, 32, 64, 128), 1, 8),
    Kernel("AwqExllamaV2Linear", "exllamav2_awq.py", 0, (4,), (-1, 32, 64, 128), 32, 32),
    Kernel("AwqGEMMLinear", "gemm_awq.py", 0, (4,), (-1, 16, 32, 64, 128), 1, 1),
    Kernel("AwqGEMMTritonLinear", "gemm_awq_triton.py", 0, (4,), (-1, 32, 64, 128), 32, 8),
    Kernel("AwqTorchLinear", "torch_awq.py", 0, (2, 3, 4, 5, 6, 7, 8), (-1, 16, 32, 64, 128), 1, 8),
)
CPU_KERNELS = (
    Kernel("TorchAtenAwqLinear", "torch_aten_kernel_awq.py", 0, (4,), (16, 32, 64, 128), 1, 1, True),
    Kernel("TorchFusedAwqLinear", "torch_fused_awq.py", 0, (4,), (-1, 16, 32, 64, 128), 1, 1, True),
    Kernel("AwqTorchLinear", "torch_awq.py", 0, (2, 3, 4, 5, 6, 7, 8), (-1, 16, 32, 64, 128), 1, 8),
)
# AUTO_BACKEND_KERNEL_MAPPING[METHOD.GPTQ][FORMAT.GPTQ]; FORMAT.GPTQ_V2 is the same without the first two
GPTQ_GROUPS = (-1, 16, 32, 64, 128, 256, 512, 1024)
GPTQ_CUDA_KERNELS = (
    Kernel("SwordfishLinear", "swordfish.py", 100, (4, 8), (-1, 32, 64, 128), 64, 64),
    Kernel("MacheteLinear", "machete.py", 90, (4, 8), (-1, 64, 128), 64, 128),
    Kernel("MarlinLinear", "marlin.py", 75, (4, 8), (-1, 32, 64, 128), 1, 1, symmetric_only=True),
    Kernel("ExllamaV2Linear", "exllamav2.py", 0, (4,), (-1, 32, 64, 128), 32, 32),
    Kernel("TritonV2Linear", "tritonv2.py", 0, (2, 4, 8), GPTQ_GROUPS, 32, 32),
    Kernel("BitblasLinear", "bitblas.py", 0, (2, 4, 8), (-1, 32, 64, 128), 16, 16),
    Kernel("TorchLinear", "torch.py", 0, (2, 3, 4, 5, 6, 7, 8), GPTQ_GROUPS, 1, 1),
)
GPTQ_V2_ONLY_FROM = 2  # FORMAT.GPTQ_V2's list starts at MarlinLinear
GPTQ_CPU_KERNELS = (
    Kernel("TorchAtenLinear", "torch_aten_kernel.py", 0, (4,), (16, 32, 64, 128), 1, 1, True),
    Kernel("TorchFusedLinear", "torch_fused.py", 0, (4,), (-1, 16, 32, 64, 128), 1, 1, True),
    Kernel("TorchLinear", "torch.py", 0, (2, 3, 4, 5, 6, 7, 8), GPTQ_GROUPS, 1, 1),
)
INT4PACK_GROUPS = (32, 64, 128, 256)
# classes whose validate_once needs a compiled GPT-QModel extension: without it selection moves on
EXTENSION = {"AwqSwordfishLinear": "swordfish", "AwqMacheteLinear": "machete", "AwqMarlinLinear": "marlin",
             "AwqExllamaV2Linear": "exllamav2", "SwordfishLinear": "swordfish", "MacheteLinear": "machete",
             "MarlinLinear": "marlin", "ExllamaV2Linear": "exllamav2", "BitblasLinear": "bitblas"}


def selected(row: Row, kernels: tuple[Kernel, ...], cap: int = 0) -> Kernel | None:
    """The model-wide class: the first whose bits, groups, symmetry and capability fit (no shapes)."""
    return next((k for k in kernels if k.min_cap <= cap and row.bits in k.bits and row.group_size in k.groups
                 and (row.symmetric or not k.symmetric_only)), None)


def _int4pack_source(k: Kernel) -> Source:
    """The int4pack class that refuses the group width (the CPU classes of both methods run the one op)."""
    return Source(G + k.file, f"{k.name} ({INT4PACK_OP})")


def _kernel_cell(row: Row, part: Part, kernels: tuple[Kernel, ...], cap: int, checked: str,
                 method: str = "AWQ") -> Cell:
    k = selected(row, kernels, cap)
    if k is None:
        return Cell("refuses", None, "transformers.gptqmodel.select", SRC_SELECT,
                    f"no GPT-QModel {method} kernel takes {row.bits} bits with group size {row.group_size}", checked)
    src = Source(G + k.file, f"{k.name} SUPPORTS_* and _validate")
    built = f" (if its {EXTENSION[k.name]} extension is built)" if k.name in EXTENSION else ""
    if part.k % k.in_div or part.n % k.out_div:
        return Cell("refuses", None, "transformers.gptqmodel.shape", src,
                    f"{k.name} (chosen once for the model{built}) needs in % {k.in_div} and out % {k.out_div}: "
                    f"this layer is {part.k} x {part.n}", checked)
    if k.int4pack and row.group not in INT4PACK_GROUPS:
        return Cell("refuses", None, "transformers.cpu.int4pack", _int4pack_source(k),
                    f"{k.name} runs ATen int4pack, which takes group widths {INT4PACK_GROUPS}, not {row.group}",
                    checked)
    preferred = next(c for c in kernels if c.min_cap <= cap)
    why = f"the first GPT-QModel kernel that fits{built} (chosen once per model, without shapes)"
    if k is not preferred:
        why += f"; {preferred.name} does not take {row.bits} bits / group size {row.group_size}"
        why += "" if row.symmetric or not preferred.symmetric_only else " / a zero point"
    return Cell("loads" if k is preferred else "fallback", k.name, "transformers.gptqmodel.select", src, why, checked)


def _gptq_v2_note(row: Row, part: Part, cap: int) -> str:
    v2 = _kernel_cell(row, part, GPTQ_CUDA_KERNELS[GPTQ_V2_ONLY_FROM:], cap, "selection", "GPTQ")
    v1 = _kernel_cell(row, part, GPTQ_CUDA_KERNELS, cap, "selection", "GPTQ")
    if (v1.kernel, v1.verdict == "refuses") == (v2.kernel, v2.verdict == "refuses"):
        return ""
    return f"; a gptq_v2 checkpoint (no Swordfish/Machete in FORMAT.GPTQ_V2): {v2.short()}"


def _gptq(row: Row, part: Part, device: str) -> Cell:
    if device == "cpu":
        c = _kernel_cell(row, part, GPTQ_CPU_KERNELS, 0, "loader", "GPTQ")
        note = ""
    else:
        cap = int(device[2:])
        c = _kernel_cell(row, part, GPTQ_CUDA_KERNELS, cap, "selection", "GPTQ")
        note = _gptq_v2_note(row, part, cap)
    return Cell(c.verdict, c.kernel, c.rule, c.source, f"{c.why}{note}; {OPTIMUM}", c.checked)


def _ct(row: Row, device: str) -> Cell:
    checked = "loader" if device == "cpu" else "source"
    return Cell("loads", DENSE, "transformers.ct.decompress", SRC_CT_DENSE,
                f"compressed-tensors loads the {row.bits}-bit packed weights as stored and its forward pre-hook "
                "decompresses every layer to a dense weight on the first forward (dequantize=False, the default): "
                "plain dense matmuls, no quantised kernel", checked)


def _config(row: Row, fmt: str, device: str) -> Cell | None:
    """The refusals of the quantization config itself, before any layer or rank."""
    refused = [order for order in row.config_actorders if refuses_actorder(order)]
    if fmt == "compressed-tensors" and refused:
        return Cell("refuses", None, "transformers.ct.actorder", SRC_CT_ACTORDER,
                    f"compressed-tensors 0.19 rejects actorder {refused[0]!r} while parsing the config (removed)",
                    "loader" if device == "cpu" else "source")
    return None


def _tp(fmt: str, device: str) -> Cell:
    checked = "loader" if device == "cpu" and fmt in TP_CHECKED else "source"
    if fmt == "compressed-tensors":
        return Cell("refuses", None, "transformers.tp.ct-decompress", SRC_TP_CT,
                    "tp_plan shards the packed parameters, then the first forward's decompress hook raises "
                    "AttributeError: install_forward replaced module.forward with a plain function", checked)
    return Cell("refuses", None, "transformers.tp.buffers", SRC_TP_BUFFERS,
                "tp_plan shards parameters only; GPT-QModel holds qweight/qzeros/scales as buffers, so each rank "
                "keeps them whole and the first forward raises (the DTensor input meets plain-tensor buffers)",
                checked)


def cell(row: Row, part: Part, tp: int, device: str, fmt: str, version: str = VERSIONS[0]) -> Cell:
    if fmt not in ("gemm", "gemv", "gptq", "compressed-tensors"):
        return Cell("unknown", None, "transformers.format", SRC_SELECT, f"{fmt}: not modelled", "source")
    refused = _config(row, fmt, device)
    if refused:
        return refused
    if tp > 1:
        return _tp(fmt, device)
    if fmt == "compressed-tensors":
        return _ct(row, device)
    if fmt == "gptq":
        return _gptq(row, part, device)
    if fmt == "gemv":
        if device == "cpu":
            return Cell("refuses", None, "transformers.gemv", SRC_GEMV, "GPT-QModel has GEMV kernels for CUDA only",
                        "loader")
        return Cell("loads", "AwqGEMVLinear", "transformers.gemv", SRC_GEMV, "GEMV kernel", "source")
    if device == "cpu":
        return _kernel_cell(row, part, CPU_KERNELS, 0, "loader")
    return _kernel_cell(row, part, CUDA_KERNELS, int(device[2:]), "selection")
