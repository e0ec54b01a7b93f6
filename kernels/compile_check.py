"""Compile every kernel configuration for real GPUs, on any machine: no GPU needed.

Triton's compiler runs on a CPU: ``triton.compile(ASTSource(fn, signature, constexprs, attrs),
target=GPUTarget("cuda", 90, 32))`` lowers a kernel through TTIR, TTGIR, LLVM IR and PTX to a
cubin with the ptxas that ships inside the triton wheel. The interpreter (TRITON_INTERPRET=1)
accepts programs a GPU compiler rejects or runs badly (dot blocks under 16, more shared memory
than the chip has, register spills), so this checks what the interpreter cannot:

    per case   registers per thread, spilled (local) bytes, shared memory against the
               architecture's limit, and whether the PTX holds tensor-core MMA (mma.sync, wgmma)
    fails on   any spill, shared memory over the limit, registers x threads over the block's
               register file, a compile error, or an fp16/bf16 GEMM path without MMA

The cases are every configuration ``kernels.configs`` lists for each architecture, fixed for
every benchmark layer (``kernels.bench.shapes``), group size and M bucket, plus the
dequantise kernel the dispatcher's dequant+matmul path launches, for fp16 and bf16
activations. The group size enters a compiled kernel only through the configuration it
fixes (BLOCK_K), and split-K, M, N and K are runtime arguments, so the cases of one tile
(block sizes, warps, stages) share one compilation; each result lists the group sizes and
layers it stands for. The signature is specialised as Triton's JIT specialises a real launch
(pointers 16-byte aligned, an int argument equal to 1 becomes a constant, one divisible by
16 carries that hint), with the argument values of the tile's first case.

Under the interpreter the kernels are not compilable objects, so the work runs in a child
process without TRITON_INTERPRET (``python -m awq_harness.kernels.compile_check OUT``: the cases as JSON on
stdin, the results as JSON in OUT).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

from awq_harness.kernels import configs, runtime
from awq_harness.kernels.bench.shapes import GROUP_SIZE, LAYERS
from awq_harness.kernels.checks import LayerShape

GROUP_SIZES = (32, 64, GROUP_SIZE)
DTYPES = ("float16", "bfloat16")
BUCKET_ROWS = {"gemm": (16, 32, 64, 255, 1024), "gemv": (1, 4, 16), "gemv_layout": (1, 4, 16)}
DEQUANT_BLOCKS = {"block_k": 32, "block_n": 64}  # kernels.dequant.awq_dequantize's defaults
GEMM_KERNELS = ("gemm",)  # the tl.dot paths: must use tensor cores for fp16/bf16
DEFAULT_ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90")
# The default (CPU) run's subset: the first entry of every GEMM M bucket and of the decode
# kernels' batch-1 bucket, plus the dequantise kernel, on one layer and group size, fp16 on
# the small-shared-memory consumer part and bf16 on Hopper (the two ends of the table); the
# command and the slow tier compile the full matrix.
SUBSET = (("sm_86", "float16"), ("sm_90", "bfloat16"))
SUBSET_LAYER = "llama-2-70b.mlp.down_proj"
# Negative control: tiles whose pipelined operands need more shared memory than an sm_86 has.
CONTROL = {"arch": "sm_86", "kernel": "gemm", "dtype": "float16",
           "config": configs.Config(128, 256, 64, split_k=1, num_warps=8, num_stages=4)}


@dataclass(frozen=True)
class Case:
    """One compilation: kernel, architecture, activation dtype, fixed configuration, and a
    representative launch (M, N, K, G) whose argument values drive the specialisation."""

    arch: str
    kernel: str
    dtype: str
    config: configs.Config
    m: int
    n: int
    k: int
    group_size: int

    def key(self) -> tuple:
        """Cases with one key share one compilation: the tile, warps and stages (split-K, M, N,
        K and G are runtime arguments)."""
        c = self.config
        return (self.arch, self.kernel, self.dtype, _launch(self)[2].get("BLOCK_M"), c.block_n, c.block_k,
                c.num_warps, c.num_stages)


@dataclass
class Result:
    arch: str
    kernel: str
    dtype: str
    config: dict
    group_sizes: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    registers: int | None = None
    spill_bytes: int | None = None
    shared_bytes: int | None = None
    shared_limit: int | None = None
    mma: str | None = None  # "wgmma", "mma.sync" or None
    mma_required: bool = False
    compile_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    control: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


# -- the cases --------------------------------------------------------------------------------

def cases(archs=DEFAULT_ARCHS, group_sizes=GROUP_SIZES, layers=tuple(LAYERS), dtypes=DTYPES) -> dict[tuple, list]:
    """compile key -> [(Case, group size, layer name), ...] for every choosable configuration."""
    found: dict[tuple, list] = {}
    for arch in archs:
        for dtype in dtypes:
            for g in group_sizes:
                for name in layers:
                    k, n = LAYERS[name]
                    layer = LayerShape(k, n, g)
                    for case in _layer_cases(arch, dtype, layer):
                        found.setdefault(case.key(), []).append((case, g, name))
    return found


def _layer_cases(arch: str, dtype: str, layer: LayerShape) -> list[Case]:
    out = [Case(arch, "dequantize", dtype, configs.Config(1, DEQUANT_BLOCKS["block_n"], DEQUANT_BLOCKS["block_k"]),
                1, layer.n, layer.k, layer.group_size)]
    for kernel, rows in BUCKET_ROWS.items():
        for m in rows:
            out += [Case(arch, kernel, dtype, c, m, layer.n, layer.k, layer.group_size)
                    for c in configs.candidates(arch, kernel, m, layer)]
    return out


def subset_cases() -> dict[tuple, list]:
    found: dict[tuple, list] = {}
    k, n = LAYERS[SUBSET_LAYER]
    layer = LayerShape(k, n, GROUP_SIZE)
    for arch, dtype in SUBSET:
        for case in _layer_cases(arch, dtype, layer):
            if case.kernel in ("gemv", "gemv_layout") and case.m != 1:
                continue  # the decode kernels at batch 1 only
            first = case.kernel == "dequantize" or case.config == configs.candidates(
                arch, case.kernel, case.m, layer)[0]
            if first:
                found.setdefault(case.key(), []).append((case, GROUP_SIZE, SUBSET_LAYER))
    return found


# -- one launch's signature, as Triton's JIT would specialise it --------------------------------

def _out_dtype(case: Case) -> str:
    if case.kernel == "gemm":
        return case.dtype if case.config.split_k == 1 and case.dtype == "float16" else "float32"
    if case.kernel == "dequantize":
        return "float16" if case.dtype == "float16" else "float32"
    return "float32"


def _launch(case: Case) -> tuple[dict[str, str], dict[str, int], dict]:
    """(pointer dtypes, int argument values, constexprs) of the wrapper's launch for this case."""
    c, m, n, k, g = case.config, case.m, case.n, case.k, case.group_size
    words = n // 8
    out = _out_dtype(case)
    if case.kernel == "dequantize":
        ptrs = {"qweight_ptr": "int32", "qzeros_ptr": "int32", "scales_ptr": "float16", "out_ptr": out}
        ints = {"K": k, "N": n, "group_size": g, "stride_qweight_k": words, "stride_qzeros_g": words,
                "stride_scales_g": n, "stride_out_k": n}
        return ptrs, ints, {"BLOCK_K": c.block_k, "BLOCK_N": c.block_n}
    ptrs = {"x_ptr": case.dtype, "qweight_ptr": "int32", "qzeros_ptr": "int32", "scales_ptr": "float16", "out_ptr": out}
    ints = {"M": m, "N": n, "K": k, "group_size": g, "stride_x_m": k, "stride_x_k": 1,
            "stride_out_split": m * n, "stride_out_m": n, "SPLIT_K": c.split_k}
    meta = {"BLOCK_N": c.block_n, "BLOCK_K": c.block_k}
    if case.kernel == "gemv_layout":
        from awq_harness.awq_ref.formats import awq_gemv
        zw = awq_gemv.zeros_width(k, g)
        ints.update(stride_qweight_n=k // 8, stride_qzeros_n=zw, stride_scales_n=zw * 8)
        return ptrs, ints, {"BLOCK_M": min(16, _pow2(m)), **meta}
    ints.update(stride_qweight_k=words, stride_qzeros_g=words, stride_scales_g=n)
    if case.kernel == "gemv":
        return ptrs, ints, {"BLOCK_M": _pow2(m), **meta}
    return ptrs, ints, {"BLOCK_M": c.block_m, **meta, **_dot_meta(case.dtype)}


def _pow2(m: int) -> int:
    return 1 << (m - 1).bit_length()


def _dot_meta(dtype: str) -> dict:
    """The GEMM wrapper's DOT_DTYPE/PRECISION for this activation dtype on a GPU (names, not objects)."""
    from awq_harness.kernels.gemm import dot_operand_names
    operand, precision = dot_operand_names(dtype, interpreted=False)
    return {"DOT_DTYPE": operand, "PRECISION": precision}


# -- compiling ------------------------------------------------------------------------------------

_TRITON_TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "int32": "i32"}
_RESOURCE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")


def _kernel_fn(kernel: str):
    import awq_harness.kernels.dequant  # noqa: F401 - kernels.dequant is used through kernels
    import awq_harness.kernels.gemm  # noqa: F401 - kernels.gemm is used through kernels
    import awq_harness.kernels.gemv  # noqa: F401 - kernels.gemv is used through kernels
    import awq_harness.kernels.gemv_layout  # noqa: F401 - kernels.gemv_layout is used through kernels
    from awq_harness import kernels
    return {"gemm": kernels.gemm.awq_gemm_kernel, "gemv": kernels.gemv.awq_gemv_kernel,
            "gemv_layout": kernels.gemv_layout.awq_gemv_layout_kernel,
            "dequantize": kernels.dequant.awq_dequantize_kernel}[kernel]


def _source(case: Case):
    import triton.language as tl
    from triton.compiler import ASTSource
    fn = _kernel_fn(case.kernel)
    ptrs, ints, meta = _launch(case)
    meta = {name: getattr(tl, v) if name == "DOT_DTYPE" else v for name, v in meta.items()}
    signature, constexprs, attrs = {}, dict(meta), {}
    for i, name in enumerate(fn.arg_names):
        if name in meta:
            signature[name] = "constexpr"
        elif name in ptrs:
            signature[name], attrs[(i,)] = "*" + _TRITON_TYPES[ptrs[name]], [["tt.divisibility", 16]]
        elif ints[name] == 1:
            signature[name], constexprs[name] = "constexpr", 1
        else:
            signature[name] = "i32"
            if ints[name] % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
    return ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)


def cuobjdump() -> str:
    import triton
    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, STACK, SHARED (static) and LOCAL bytes of the cubin's kernel, from cuobjdump."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([cuobjdump(), "--dump-resource-usage", f.name], check=True,
                              capture_output=True, text=True).stdout
    found = _RESOURCE.search(text)
    if not found:
        raise RuntimeError(f"cuobjdump printed no resource usage: {text.strip()[:200]}")
    return dict(zip(("registers", "stack", "static_shared", "local"), map(int, found.groups())))


def mma_kind(ptx: str) -> str | None:
    return "wgmma" if "wgmma.mma_async" in ptx else "mma.sync" if "mma.sync" in ptx else None


def compile_case(case: Case) -> Result:
    import triton
    from triton.backends.compiler import GPUTarget
    arch = configs.arch(case.arch)
    result = Result(case.arch, case.kernel, case.dtype, asdict(case.config),
                    mma_required=case.kernel in GEMM_KERNELS, shared_limit=arch.shared_bytes)
    start = time.perf_counter()
    try:
        compiled = triton.compile(_source(case), target=GPUTarget("cuda", arch.capability, 32),
                                  options={"num_warps": case.config.num_warps, "num_stages": case.config.num_stages})
        usage = resource_usage(compiled.asm["cubin"])
    except Exception as err:  # noqa: BLE001 - a compiler failure is this case's result
        result.errors.append(f"compile failed: {type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}")
        result.compile_s = time.perf_counter() - start
        return result
    result.compile_s = time.perf_counter() - start
    result.registers = usage["registers"]
    result.spill_bytes = usage["local"] + usage["stack"]
    result.shared_bytes = compiled.metadata.shared + usage["static_shared"]
    result.mma = mma_kind(compiled.asm["ptx"])
    result.errors = judge(result, arch, case.config.num_warps)
    return result


def judge(r: Result, arch: configs.Arch, num_warps: int) -> list[str]:
    errors = []
    if r.spill_bytes:
        errors.append(f"{r.spill_bytes} bytes spilled to local memory")
    if r.shared_bytes > arch.shared_bytes:
        errors.append(f"shared memory {r.shared_bytes} B > {arch.name}'s {arch.shared_bytes} B")
    if r.registers * num_warps * 32 > arch.registers_per_block:
        errors.append(f"{r.registers} registers x {num_warps * 32} threads > {arch.registers_per_block}")
    if r.mma_required and r.mma is None:
        errors.append(f"{r.dtype} GEMM path without tensor-core MMA in its PTX")
    return errors


# -- running a matrix -----------------------------------------------------------------------------

def _compile_all(found: dict[tuple, list], control: bool) -> list[Result]:
    results = []
    for entries in found.values():
        case = entries[0][0]
        r = compile_case(case)
        r.group_sizes = sorted({g for _, g, _ in entries})
        r.layers = sorted({name for _, _, name in entries})
        results.append(r)
    if control:
        c = CONTROL
        r = compile_case(Case(c["arch"], c["kernel"], c["dtype"], c["config"], 256, 4096, 4096, GROUP_SIZE))
        r.control = True
        results.append(r)
    return results


def _serialise(found: dict[tuple, list]) -> list[dict]:
    return [{"entries": [[asdict(case), g, name] for case, g, name in entries]} for entries in found.values()]


def _deserialise(items: list[dict]) -> dict[tuple, list]:
    found = {}
    for i, item in enumerate(items):
        found[i] = [(Case(**{**c, "config": configs.Config(**c["config"])}), g, name) for c, g, name in item["entries"]]
    return found


def run(found: dict[tuple, list], control: bool = True) -> list[Result]:
    """Compile each distinct case once (in a child process when this one interprets kernels)."""
    if not runtime.INTERPRETED:
        return _compile_all(found, control)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    request = json.dumps({"cases": _serialise(found), "control": control})
    with tempfile.TemporaryDirectory() as tmp:
        answer = os.path.join(tmp, "results.json")
        done = subprocess.run([sys.executable, "-m", "awq_harness.kernels.compile_check", answer], input=request, env=env,  # noqa: E501 - the awq_harness prefix
                              capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
        if done.returncode:
            raise RuntimeError(f"compile-check worker failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
        with open(answer) as f:
            return [Result(**r) for r in json.load(f)]


def as_json(results: list[Result]) -> list[dict]:
    return [{**asdict(r), "ok": r.ok} for r in results]


def verdict(results: list[Result]) -> list[str]:
    """Why the check fails: every failing matrix case, and a negative control that passed."""
    bad = [f"{r.arch} {r.kernel} {r.dtype} {_tile(r)}: {'; '.join(r.errors)}" for r in results
           if not r.control and not r.ok]
    bad += [f"negative control {r.arch} {_tile(r)} passed: the check cannot see what it must reject"
            for r in results if r.control and r.ok]
    return bad


def _cell(value) -> str:
    return "-" if value is None else str(value)


def _tile(r: Result) -> str:
    c = r.config
    return f"{c['block_m']}x{c['block_n']}x{c['block_k']} split {c['split_k']} w{c['num_warps']} s{c['num_stages']}"


def table(results: list[Result]) -> str:
    """One line per compilation, for a terminal."""
    head = f"{'arch':6} {'kernel':12} {'dtype':9} {'tile':30} {'regs':>4} {'spill':>5} {'shared':>7} {'limit':>7} mma"
    rows = [head]
    for r in results:
        cells = [_cell(v) for v in (r.registers, r.spill_bytes, r.shared_bytes, r.shared_limit)]
        rows.append(f"{r.arch:6} {r.kernel:12} {r.dtype:9} {_tile(r):30} {cells[0]:>4} {cells[1]:>5} {cells[2]:>7} "
                    f"{cells[3]:>7} {r.mma or '-':8} {'CONTROL ' if r.control else ''}"
                    f"{'ok' if r.ok else 'FAIL: ' + '; '.join(r.errors)}")
    return "\n".join(rows)


def _worker() -> int:
    request = json.loads(sys.stdin.read())
    results = _compile_all(_deserialise(request["cases"]), request["control"])
    with open(sys.argv[1], "w") as f:
        json.dump([asdict(r) for r in results], f)
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
