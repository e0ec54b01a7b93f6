"""GPU benchmark of the AWQ kernels against fp16 ``torch.matmul``, with a CPU dry mode.

One record per (kernel, layer shape, M); a results file is JSON:

    {"schema": 1, "records": [record, ...], "decode": [decode record, ...]}

(decode records: kernels/bench/decode.py)

    record field      meaning
    kernel            "gemv" | "gemm" | "awq_linear" (the dispatcher; its path in ``path``)
    path              kernel that actually ran ("gemv", "gemm", "dequant+matmul")
    shape             layer name, e.g. "llama-2-7b.mlp.down_proj" ("dry.*" in dry mode)
    M, N, K           rows of x, outputs, inputs
    group_size        AWQ group size G
    dtype             activation / output dtype ("float16")
    time_ms           median kernel time (do_bench: CUDA events, warm-up, L2 flush)
    fp16_time_ms      median time of torch.matmul(x, W_fp16) on the same shape
    speedup           fp16_time_ms / time_ms
    achieved_gbps     AWQ-format bytes moved (weights, scales, zeros, x, y) / time_ms
    achieved_tflops   2*M*N*K / time_ms
    roofline_bound    memory-only bound on speedup: fp16 bytes / AWQ bytes for this shape
                      (at M=1, G=128: 16 / (4 + 16/128 + 4/128) bits = 3.85x; compute limits
                      the real bound further at large M, see the issue's roofline notes)
    threshold         {"baseline": x, "band": b, "low": x*(1-b), "high": x*(1+b)} from
                      kernels/baselines/<device>.json, or null when that GPU has no entry
    passed            low <= speedup <= high, or null without a threshold
    device            torch.cuda.get_device_name(), or "cpu (TRITON_INTERPRET dry run)"
    dry_run           true when timed on the CPU interpreter: checks harness logic only,
                      the numbers say nothing about speed
    timer             "triton.testing.do_bench" | "perf_counter"
"""
