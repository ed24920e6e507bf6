"""Benchmarks: each prints a table comparing ours with a reference side by side; run as python -m benchmarks.NAME."""
