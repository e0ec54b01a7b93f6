"""Triton kernel tests (issue 4): properties against awq_ref, mutations, benchmarks."""
