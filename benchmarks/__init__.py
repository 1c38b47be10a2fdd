"""Benchmarks: pytest-benchmark modules (bench_*.py) and round benchmarks run with python -m."""
