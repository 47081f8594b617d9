//! Benchmark harness (see `run_bench`).
