"""Benchmarks run by scripts/bench; results go to bench/results/*.json."""
