"""The benchmark of Conversant: `python -m bench` (see BENCHMARKS.md)."""
