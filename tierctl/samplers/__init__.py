"""Samplers: sources of page-access observations (BPF, perf, DAMON, accessed bits)."""
