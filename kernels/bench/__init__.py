"""GPU benchmark of the AWQ kernels against fp16 ``torch.matmul``, with a CPU dry mode.

One record per (kernel, layer shape, M). A record is an entry of the regression report's
``kernel_speedups`` section (``reports.collect``); a session's records are written as a
results file of the report's schema (``reports.schema``), with the decode records
(kernels/bench/decode.py) in its ``decode_speed`` section. Baselines and the band a speed-up
must stay in are the report's too: ``reports.baselines`` and ``reports.compare``.

    record field      meaning
    kernel            "gemv" | "gemm" | "awq_linear" (the dispatcher; its path in ``path``)
    path              kernel that actually ran ("gemv", "gemm", "dequant+matmul")
    shape             layer name, e.g. "llama-2-7b.mlp.down_proj" ("dry.*" in dry mode)
    batch, N, K       M (rows of x), outputs, inputs
    group_size        AWQ group size G
    dtype             activation / output dtype ("float16")
    time_ms           median kernel time (do_bench: CUDA events, warm-up, L2 flush)
    ref_time_ms       median time of torch.matmul(x, W_fp16) on the same shape
    speedup           ref_time_ms / time_ms
    gbps              AWQ-format bytes moved (weights, scales, zeros, x, y) / time_ms
    tflops            2*M*N*K / time_ms
    bound             memory-only bound on speedup: fp16 bytes / AWQ bytes for this shape
                      (at M=1, G=128: 16 / (4 + 16/128 + 4/128) bits = 3.85x; compute limits
                      the real bound further at large M, see kernels/bench/roofline.py)
    device            torch.cuda.get_device_name(), or "cpu (TRITON_INTERPRET dry run)"
    dry_run           true when timed on the CPU interpreter: checks harness logic only,
                      the numbers say nothing about speed (the report never compares them)
    timer             "triton.testing.do_bench" | "perf_counter"
"""
