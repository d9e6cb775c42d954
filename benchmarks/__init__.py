"""Benchmarks: each `bench_*.py` module exposes `run() -> list[Row]`; `python -m benchmarks` runs them all."""
