"""Triton kernel tests: properties against awq_ref, mutations, benchmarks."""
