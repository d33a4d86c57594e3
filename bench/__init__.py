"""Benchmarks: `make bench` (python -m bench). Figures are counts or ratios against a baseline measured in
the same run, never absolute timings asserted in tests."""
