"""Benchmark scripts, run from the repository root as `python -m bench.NAME` (see --help); their
current figures are in BENCHMARKS.md. Shared helpers live in bench/common.py."""
